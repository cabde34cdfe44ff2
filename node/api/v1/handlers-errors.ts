/**
 * Named errors of the public API's handlers (node/api/v1/handlers*.ts). Each carries its HTTP
 * status (HttpError), so the router answers it as a problem of that status with the error's name.
 * The node's own errors (ItemNotFoundError, AgentNotFoundHereError, WorkUnauthorizedError, …) go
 * through as they are: the server's table of statuses names them.
 *
 * @example
 * throw invalidField('body.as', 'is required with the operator\'s token: name the agent it acts as')
 */
import { HttpError, InvalidRequestError } from '../http.ts'

/**
 * A request the route's schema let through that the handler refuses for what one field says: 400
 * InvalidRequestError (the router's own, node/api/http.ts) naming `field` (`body.as`, `query.after`).
 */
export function invalidField(field: string, message: string): InvalidRequestError {
  return new InvalidRequestError(`${field}: ${message}`, [{ field, message }])
}

/** The board named is not one this node holds (404). Reading never opens a board; creating an item does. */
export class BoardNotFoundError extends HttpError {
  static name = 'BoardNotFoundError'
  name = 'BoardNotFoundError'
  constructor(message: string) {
    super(404, message)
  }
}

/** The document named is not one this node holds, or not one the caller may read (404 either way). */
export class DocumentNotFoundError extends HttpError {
  static name = 'DocumentNotFoundError'
  name = 'DocumentNotFoundError'
  constructor(message: string) {
    super(404, message)
  }
}

/** The writer's chain does not grant writing the document, or it is one of the node's own (403). */
export class DocumentUnauthorizedError extends HttpError {
  static name = 'DocumentUnauthorizedError'
  name = 'DocumentUnauthorizedError'
  constructor(message: string) {
    super(403, message)
  }
}

/** No live token has that id (404). */
export class TokenNotFoundError extends HttpError {
  static name = 'TokenNotFoundError'
  name = 'TokenNotFoundError'
  constructor(message: string) {
    super(404, message)
  }
}

/** As many long polls and streams of this kind are open as the API holds at once (429): close one first. */
export class TooManyWaitersError extends HttpError {
  static name = 'TooManyWaitersError'
  name = 'TooManyWaitersError'
  constructor(message: string) {
    super(429, message)
  }
}
