// The options and events of a client.

import type { ReconnectOptions } from './backoff.js';
import type { LabchatError } from './errors.js';
import type { RoomOptions } from './room.js';

/** What the client needs of a WebSocket: the browser's, Node 22's global one, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientOptions extends RoomOptions {
  /** `ws://host:port/` or `wss://…`. */
  url: string;
  /** Returns a JWT; called for every connection and again before the token's `exp`. */
  getToken: () => Promise<string> | string;
  /** A WebSocket implementation; default: the global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  reconnect?: ReconnectOptions;
  /** How long before `exp` to refresh the token (ms); default: a quarter of its lifetime, at most 60 s. */
  refreshBeforeMs?: number;
}

export type ClientState =
  | { state: 'connecting'; attempt: number }
  | { state: 'open' }
  | { state: 'reconnecting'; attempt: number; delayMs: number; code: number; reason: string }
  | { state: 'closed'; error?: LabchatError };

export interface ClientEventMap {
  state: ClientState;
  /** An `error` frame no request of the client is waiting for (e.g. TOKEN_EXPIRED, removal from a room). */
  error: LabchatError;
}
