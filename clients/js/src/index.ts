// @labchat/client: labchat's guarantees, automatic. See README.md.

export { createClient, Client } from './client.js';
export type { ClientOptions, ClientState, ClientEventMap, WebSocketLike, WebSocketConstructor } from './client.js';
export { Room } from './room.js';
export type { RoomOptions, RoomEventMap } from './room.js';
export { backoffDelay, backoffWindow } from './backoff.js';
export type { ReconnectOptions } from './backoff.js';
export { LabchatError, ClientErrorCodes, DISCONNECTED } from './errors.js';
export * from './protocol.js';
