/**
 * The web page: starts a browser node, bootstraps it from `?bootstrap=<multiaddr>` parameters or,
 * failing those, from the node process that served the page (`bootstrap.json`), and shows its peer
 * id, its connected peers and gossip, live.
 */
import { parseMultiaddr, parseMultiaddrs } from '../../src/network/multiaddrs.ts'
import { createBrowserNode } from '../platform.ts'
import { hostOf } from '../../src/network/gater.ts'
import { parsePrincipal } from '../../src/crypto/principal.ts'
import { MEMBER_TAG } from '../../src/membership/service.ts'
import { parseSequence } from '../../src/spki/sequence.ts'
import { parseAnyForm } from '../../src/spki/sexp.ts'
import type { CyberspaceNode } from '../../src/node.ts'

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (el == null) throw new Error(`page is missing #${id}`)
  return el as T
}

function setStatus(state: 'starting' | 'running' | 'error', text: string): void {
  const status = $('status')
  status.dataset.state = state
  status.textContent = text
}

async function bootstrapList(): Promise<string[]> {
  const fromUrl = new URLSearchParams(location.search).getAll('bootstrap')
  if (fromUrl.length > 0) return fromUrl
  const res = await fetch('bootstrap.json', { signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`could not load bootstrap.json: HTTP ${res.status}`)
  const { multiaddrs } = (await res.json()) as { multiaddrs: string[] }
  return multiaddrs
}

function renderAddrs(node: CyberspaceNode): void {
  $('addrs').replaceChildren(
    ...node.multiaddrs().map(ma => {
      const li = document.createElement('li')
      li.className = 'mono'
      li.textContent = ma.toString()
      return li
    })
  )
}

function renderPeers(node: CyberspaceNode): void {
  const peers = node.peers()
  $('peer-count').textContent = String(peers.length)
  $('peers').replaceChildren(
    ...peers.map(peer => {
      const li = document.createElement('li')
      li.className = 'mono'
      li.dataset.peerId = peer.peerId
      li.textContent = `${peer.peerId} via ${peer.addrs[0] ?? '?'}`
      return li
    })
  )
}

function renderMembers(node: CyberspaceNode): void {
  const members = node.membership.members()
  $('member-count').textContent = String(members.length)
  $('member-status').textContent = node.membership.isMember()
    ? 'this tab is a member'
    : 'this tab is not a member: it holds no chain to (cyberspace member)'
  $('members')
    .querySelector('tbody')
    ?.replaceChildren(
      ...members.map(m => {
        const tr = document.createElement('tr')
        tr.dataset.peerId = m.peerId
        tr.dataset.state = m.state
        for (const text of [m.peerId + (m.self ? ' (this tab)' : ''), m.state, String(m.incarnation)]) {
          const td = document.createElement('td')
          td.className = 'mono'
          td.textContent = text
          tr.append(td)
        }
        return tr
      })
    )
}

/** The trust and import forms: how a tab operator makes the tab a member. */
function certificateForms(node: CyberspaceNode): void {
  const result = $('cert-result')
  const report = (work: () => Promise<string>): void => {
    work().then(
      text => {
        result.dataset.state = 'done'
        result.textContent = text
        renderMembers(node)
      },
      (err: Error) => {
        result.dataset.state = 'failed'
        result.textContent = `refused: ${err.message}`
      }
    )
  }
  $('trust-form').addEventListener('submit', evt => {
    evt.preventDefault()
    report(async () => {
      const principal = parsePrincipal($<HTMLInputElement>('trust').value.trim())
      await node.spki.addAclEntry(principal, MEMBER_TAG)
      return `trusting ${principal} for (cyberspace member)`
    })
  })
  $('import-form').addEventListener('submit', evt => {
    evt.preventDefault()
    report(async () => {
      const items = parseAnyForm(new TextEncoder().encode($<HTMLTextAreaElement>('import').value), {
        maxBytes: 64 * 1024
      })
      if (items.length !== 1) throw new Error('paste one certificate, CRL or sequence')
      const { certs, crls } = parseSequence(items[0])
      await node.spki.addAll({ certs, crls })
      return `imported ${certs.length} certificate(s) and ${crls.length} CRL(s)`
    })
  })
}

async function run(): Promise<void> {
  const list = await bootstrapList()
  $('bootstrap').textContent = list.join(' ') || '(none)'
  const allowedHosts = new Set<string>()
  const node = await createBrowserNode({ bootstrap: parseMultiaddrs(list, 'bootstrap'), allowedHosts })
  await node.start()
  Object.assign(globalThis, { cyberspace: node })
  $('peer-id').textContent = node.peerId.toString()
  setStatus('running', 'running')

  renderAddrs(node)
  node.libp2p.addEventListener('self:peer:update', () => {
    renderAddrs(node)
  })
  $('dial-form').addEventListener('submit', evt => {
    evt.preventDefault()
    const result = $('dial-result')
    result.dataset.state = 'dialling'
    Promise.resolve()
      .then(async () => {
        const target = parseMultiaddr($<HTMLInputElement>('dial').value.trim(), 'bootstrap')
        // the user named this host: the tab may dial it even on a private network
        const host = hostOf(target)
        if (host != null) allowedHosts.add(host)
        return await node.libp2p.dial(target)
      })
      .then(
        connection => {
          result.dataset.state = 'connected'
          result.textContent = `connected to ${connection.remotePeer.toString()} via ${connection.remoteAddr.toString()}`
          renderPeers(node)
        },
        (err: Error) => {
          result.dataset.state = 'failed'
          result.textContent = `could not connect: ${err.message}`
        }
      )
  })

  certificateForms(node)
  renderMembers(node)
  node.membership.addEventListener('member:change', () => {
    renderMembers(node)
  })
  node.membership.addEventListener('member:remove', () => {
    renderMembers(node)
  })

  renderPeers(node)
  node.libp2p.addEventListener('connection:open', () => {
    renderPeers(node)
  })
  node.libp2p.addEventListener('connection:close', () => {
    renderPeers(node)
  })
  setInterval(() => {
    renderPeers(node)
    renderMembers(node)
  }, 2000)

  const topicInput = $<HTMLInputElement>('topic')
  const subscribe = (): void => {
    const topic = topicInput.value.trim()
    if (topic !== '' && !node.pubsub.getTopics().includes(topic)) node.pubsub.subscribe(topic)
  }
  subscribe()
  $('subscribe').addEventListener('click', subscribe)
  node.pubsub.addEventListener('message', evt => {
    const msg = evt.detail
    const li = document.createElement('li')
    li.dataset.topic = msg.topic
    li.dataset.from = msg.type === 'signed' ? msg.from.toString() : ''
    li.textContent = `[${msg.topic}] ${li.dataset.from.slice(-8)}: ${new TextDecoder().decode(msg.data)}`
    $('messages').prepend(li)
    while ($('messages').children.length > 200) $('messages').lastElementChild?.remove()
  })
  $('publish').addEventListener('submit', evt => {
    evt.preventDefault()
    const message = $<HTMLInputElement>('message')
    const text = message.value
    if (text === '') return
    const result = $('publish-result')
    node.pubsub.publish(topicInput.value.trim(), new TextEncoder().encode(text)).then(
      ({ recipients }) => {
        result.textContent = `sent to ${recipients.length} ${recipients.length === 1 ? 'peer' : 'peers'}`
        result.dataset.recipients = String(recipients.length)
        message.value = ''
      },
      (err: Error) => {
        result.textContent = `not sent: ${err.message}`
        result.dataset.recipients = '0'
      }
    )
  })
}

run().catch((err: Error) => {
  setStatus('error', `failed: ${err.message}`)
})
