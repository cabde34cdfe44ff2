/**
 * Named errors of the A2A binding. Those a request gets before its JSON-RPC call is read are the
 * API's own, answered as problem details: RouteNotFoundError, MethodNotAllowedError,
 * UnsupportedMediaTypeError, BodyTooLargeError (../api/http.ts), AgentNotFoundHereError for an
 * agent not hosted here, TooManyWaitersError for too many open streams
 * (../api/v1/handlers-errors.ts). Those of a call are A2A errors (`@a2a-js/sdk/errors`) the SDK's
 * JSON-RPC transport turns into JSON-RPC error objects; this file holds the one A2A lacks.
 *
 * @example
 * throw new A2aForbiddenError(`${actor} may not create a2a tasks`)                 // JSON-RPC error -32040
 */
import { A2AError } from '@a2a-js/sdk/errors'

/**
 * JSON-RPC code of a call the caller's chain does not allow: A2A defines none for it (its codes are
 * -32001..-32009), so one of JSON-RPC's implementation-defined server errors (-32000..-32099).
 */
export const A2A_FORBIDDEN_CODE = -32040

/**
 * The caller's chain does not grant what the call does (creating or cancelling the task's work
 * item). A JSON-RPC error with code A2A_FORBIDDEN_CODE; reads the caller may not make are answered
 * as tasks that do not exist instead, so nothing of them is told.
 */
export class A2aForbiddenError extends A2AError {
  static name = 'A2aForbiddenError'
  name = 'A2aForbiddenError'
  reason = 'PERMISSION_DENIED'
  /** What the SDK's JSON-RPC transport reads: the error is a JSON-RPC one, with this code. */
  readonly transport = 'jsonrpc'
  readonly envelopeCode = A2A_FORBIDDEN_CODE
}
