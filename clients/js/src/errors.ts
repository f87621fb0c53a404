// The errors the client rejects promises with and reports in its `closed` state.

import type { ErrorData } from './protocol.js';

/** The server answered a frame with `error`. */
export class LabchatError extends Error {
  override readonly name = 'LabchatError';
  readonly code: string;
  readonly data: ErrorData | undefined;
  constructor(code: string, message: string, data?: ErrorData) {
    super(`${code}: ${message}`);
    this.code = code;
    this.data = data;
  }
}

/** Codes of errors the client makes itself (never sent by the server). */
export const ClientErrorCodes = {
  /** The client was closed (client.close(), or it gave up) before the operation completed. */
  CLOSED: 'CLIENT_CLOSED',
  /** A send was refused because the queue of unsent messages is full. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** The room was left before the operation completed. */
  LEFT: 'ROOM_LEFT',
  /** The server refused the token (handshake 401/403, close 4003) even after a fresh getToken(). */
  AUTH_REFUSED: 'AUTH_REFUSED',
  /** The server closed with 1008: the client sent too fast for too long. */
  POLICY: 'POLICY_VIOLATION',
  /** maxAttempts reconnects in a row failed. */
  GAVE_UP: 'GAVE_UP',
} as const;

/** A request could not be sent, or its connection closed before the reply. */
export const DISCONNECTED = 'DISCONNECTED';

/** Whether a failed frame should be sent again (same frame, same clientMessageId) later: as the
 * server's `retryable` says (the library always sends a clientMessageId, so an `INTERNAL` on a
 * send is retryable), and after a lost connection. `UNAUTHORIZED` (retryable with a new token) is
 * the token refresh's own affair. */
export function shouldRetry(e: unknown): boolean {
  if (!(e instanceof LabchatError)) return false;
  switch (e.code) {
    case DISCONNECTED:
      return true;
    case 'UNAUTHORIZED':
      return false;
    default:
      return e.data?.retryable === true;
  }
}

/** The pause before a retry: the server's `retryAfterMs`, else 0.5 to 1 s. */
export const RETRY_MS = 500;
export function retryDelay(e: unknown): number {
  const after = e instanceof LabchatError ? e.data?.retryAfterMs : undefined;
  return after ?? RETRY_MS + Math.floor(Math.random() * RETRY_MS);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
