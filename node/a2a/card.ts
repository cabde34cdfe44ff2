/**
 * The A2A agent card a node serves for an agent it hosts: the agent's registry card (signed by the
 * agent and its host, in the DHT), with the node's JSON-RPC endpoint for the agent put first among
 * its interfaces, bearer authentication (a token of this node: the agent's own or the operator's),
 * and streaming. Served as A2A v1.0 JSON (`AgentCard.toJSON`: security schemes keyed by their kind),
 * or in v0.3's form to a client that does not say it speaks v1.0 (`legacyCardJson`).
 *
 * @example
 * const view = node.registry.published().find(r => r.agent === principal)
 * const card = a2aCard(view.card, 'http://127.0.0.1:4100/a2a/z6Mk…')
 * res.end(JSON.stringify(AgentCard.toJSON(card)))
 */
import { A2A_PROTOCOL_VERSION } from '@a2a-js/sdk'
import type { AgentCard, AgentExtension, AgentSkill } from '@a2a-js/sdk'
import type { AgentCard as RegistryCard } from '../../protocols/registry/codec.ts'

/** The A2A protocol binding of the endpoint (A2A's name for JSON-RPC 2.0 over HTTP). */
export const JSONRPC_BINDING = 'JSONRPC'
/** The name of the card's security scheme. */
export const BEARER_SCHEME = 'bearer'

/** A2A's version of the wire format the binding also speaks (a request without `A2A-Version`). */
export const LEGACY_VERSION = '0.3'

/** The card for `card`'s agent, reached over JSON-RPC at `endpoint` (A2A v1.0, and v0.3 there too). */
export function a2aCard(card: RegistryCard, endpoint: string): AgentCard {
  return {
    name: card.name,
    description: card.description,
    version: card.version,
    supportedInterfaces: [
      { url: endpoint, protocolBinding: JSONRPC_BINDING, protocolVersion: A2A_PROTOCOL_VERSION, tenant: '' },
      { url: endpoint, protocolBinding: JSONRPC_BINDING, protocolVersion: LEGACY_VERSION, tenant: '' },
      // the libp2p binding of the registry, for peers that speak it
      ...card.supportedInterfaces
        .filter(i => i.url !== endpoint)
        .map(i => ({
          url: i.url,
          protocolBinding: i.protocolBinding,
          protocolVersion: i.protocolVersion,
          tenant: i.tenant ?? ''
        }))
    ],
    provider: card.provider == null ? undefined : { url: card.provider.url, organization: card.provider.organization },
    ...(card.documentationUrl != null ? { documentationUrl: card.documentationUrl } : {}),
    ...(card.iconUrl != null ? { iconUrl: card.iconUrl } : {}),
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extendedAgentCard: false,
      extensions: (card.capabilities.extensions ?? []).map((e): AgentExtension => ({
        uri: e.uri,
        description: e.description ?? '',
        required: e.required ?? false,
        params: e.params
      }))
    },
    securitySchemes: {
      [BEARER_SCHEME]: {
        scheme: {
          $case: 'httpAuthSecurityScheme',
          value: {
            scheme: 'Bearer',
            bearerFormat: '',
            description:
              "A token of the agent's host node: an agent token (the caller acts as its agent, within its chain) or the node operator's"
          }
        }
      }
    },
    securityRequirements: [{ schemes: { [BEARER_SCHEME]: { list: [] } } }],
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    skills: card.skills.map((s): AgentSkill => ({
      id: s.id,
      name: s.name,
      description: s.description,
      tags: s.tags,
      examples: s.examples ?? [],
      inputModes: s.inputModes ?? [],
      outputModes: s.outputModes ?? [],
      securityRequirements: []
    })),
    signatures: []
  }
}

/**
 * The same card in A2A v0.3's form, for a client that asks without `A2A-Version` (v0.3 had one
 * `url` and `preferredTransport`, security schemes by `type`, and `security` lists); the v1.0
 * interfaces ride along in `supportedInterfaces`, as the SDK's own v0.3 cards carry them.
 */
export function legacyCardJson(card: AgentCard): Record<string, unknown> {
  const endpoint = card.supportedInterfaces[0]
  const bearer = card.securitySchemes[BEARER_SCHEME]?.scheme
  return {
    protocolVersion: '0.3.0',
    name: card.name,
    description: card.description,
    version: card.version,
    url: endpoint.url,
    preferredTransport: JSONRPC_BINDING,
    additionalInterfaces: [{ url: endpoint.url, transport: JSONRPC_BINDING }],
    ...(card.provider != null
      ? { provider: { url: card.provider.url, organization: card.provider.organization } }
      : {}),
    ...(card.documentationUrl != null ? { documentationUrl: card.documentationUrl } : {}),
    ...(card.iconUrl != null ? { iconUrl: card.iconUrl } : {}),
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extensions: (card.capabilities?.extensions ?? []).map(e => ({
        uri: e.uri,
        description: e.description,
        required: e.required,
        ...(e.params != null ? { params: e.params } : {})
      }))
    },
    securitySchemes: {
      [BEARER_SCHEME]: {
        type: 'http',
        scheme: 'bearer',
        ...(bearer?.$case === 'httpAuthSecurityScheme' ? { description: bearer.value.description } : {})
      }
    },
    security: [{ [BEARER_SCHEME]: [] }],
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    skills: card.skills.map(s => ({
      id: s.id,
      name: s.name,
      description: s.description,
      tags: s.tags,
      examples: s.examples,
      inputModes: s.inputModes,
      outputModes: s.outputModes
    })),
    supportsAuthenticatedExtendedCard: false,
    supportedInterfaces: card.supportedInterfaces.map(i => ({
      url: i.url,
      protocolBinding: i.protocolBinding,
      protocolVersion: i.protocolVersion
    }))
  }
}
