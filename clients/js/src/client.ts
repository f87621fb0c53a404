// The connection: one websocket at a time, authenticated with getToken(), reconnected with
// full-jitter backoff, its token refreshed before it expires; frames matched to replies by `id`.

import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { ClientErrorCodes, DISCONNECTED, LabchatError } from './errors.js';
import type { AckData, AckInbox, ClientEvents, ErrorData, InboxRow, RoomHistoryData } from './protocol.js';
import { CloseCodes } from './protocol.js';
import { Room, type RoomHost, type RoomOptions } from './room.js';
import { tokenClaims } from './token.js';
import type { ClientEventMap, ClientOptions, ClientState, WebSocketConstructor, WebSocketLike } from './options.js';

export type { ClientEventMap, ClientOptions, ClientState, WebSocketConstructor, WebSocketLike };

type InboxListener = (row: InboxRow, source: 'live' | 'resync') => void;

interface Pending {
  resolve: (data: unknown) => void;
  reject: (e: LabchatError) => void;
  onHistory?: (page: RoomHistoryData) => void;
}

const OPEN = 1;

export class Client extends Emitter<ClientEventMap> implements RoomHost {
  private readonly opts: ClientOptions;
  private readonly reconnect: Required<ReconnectOptions>;
  private readonly WS: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private rooms = new Map<string, Room>();
  private inboxListeners = new Set<InboxListener>();
  private attempt = 0;
  private authRetried = false;
  private userClosed = false;
  private finished = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private tokenExp = 0;
  private openWaiters: Array<() => void> = [];
  /** The connection generation: bumped by every new socket. */
  gen = 0;
  /** The token's `sub`: the user this client acts as (known once a token was fetched). */
  userId = '';
  /** The current state. */
  state: ClientState = { state: 'connecting', attempt: 0 };

  constructor(opts: ClientOptions) {
    super();
    this.opts = opts;
    this.reconnect = {
      minDelayMs: opts.reconnect?.minDelayMs ?? 1000,
      maxDelayMs: opts.reconnect?.maxDelayMs ?? 30_000,
      maxAttempts: opts.reconnect?.maxAttempts ?? Infinity,
    };
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket: pass createClient({WebSocket}) (e.g. the `ws` package) or run where WebSocket is global');
    this.WS = WS;
    setTimeout(() => void this.connect(), 0);
  }

  get roomOptions(): RoomOptions {
    return this.opts;
  }

  /** The room of `requestId`: joined now (and after every reconnect) until `room.leave()`. */
  room(requestId: string): Room {
    const key = requestId.toLowerCase();
    let room = this.rooms.get(key);
    if (!room) {
      room = new Room(this, key);
      this.rooms.set(key, room);
      if (this.isOpen()) void room.join();
    }
    return room;
  }

  /** A page of the inbox, most recent activity first; waits for the connection. */
  async inbox(opts: { limit?: number; before?: string } = {}): Promise<AckInbox> {
    for (;;) {
      await this.whenOpen();
      try {
        return await this.request('inbox', opts);
      } catch (e) {
        if (!(e instanceof LabchatError) || e.code !== DISCONNECTED) throw e;
      }
    }
  }

  /**
   * Calls `fn` with every `inboxUpdate` ('live') and, on subscribing and after each reconnect,
   * with each row of the inbox's first page ('resync'), so no change is missed. Returns the
   * function that unsubscribes.
   */
  onInbox(fn: InboxListener): () => void {
    this.inboxListeners.add(fn);
    if (this.inboxListeners.size === 1 && this.isOpen()) void this.subscribeInbox(this.gen);
    else if (this.isOpen()) void this.resyncInbox(this.gen, fn);
    return () => {
      if (!this.inboxListeners.delete(fn) || this.inboxListeners.size > 0) return;
      if (this.isOpen()) this.request('unsubscribeInbox', {}).catch(() => undefined);
    };
  }

  /** Closes the connection for good; pending operations are rejected with CLIENT_CLOSED. */
  close(): void {
    this.userClosed = true;
    this.finish(undefined);
  }

  // ------------------------------------------------------------------ RoomHost

  isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === OPEN && this.state.state === 'open';
  }

  forget(room: Room): void {
    if (this.rooms.get(room.requestId) === room) this.rooms.delete(room.requestId);
  }

  /** Sends one frame (always with an `id`) and resolves with its `ack` data. */
  request<K extends keyof ClientEvents>(
    event: K,
    data: ClientEvents[K],
    onHistory?: (page: RoomHistoryData) => void,
  ): Promise<AckData[K]> {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || !this.isOpen()) {
        reject(new LabchatError(DISCONNECTED, 'not connected'));
        return;
      }
      const id = this.nextId++;
      const p: Pending = { resolve: resolve as (d: unknown) => void, reject };
      if (onHistory) p.onHistory = onHistory;
      this.pending.set(id, p);
      try {
        ws.send(JSON.stringify({ event, data, id }));
      } catch (e) {
        this.pending.delete(id);
        reject(new LabchatError(DISCONNECTED, `send failed: ${String(e)}`));
      }
    });
  }

  whenOpen(): Promise<void> {
    if (this.isOpen()) return Promise.resolve();
    if (this.finished) return Promise.reject(new LabchatError(ClientErrorCodes.CLOSED, 'the client is closed'));
    return new Promise((resolve) => this.openWaiters.push(resolve));
  }

  isFinished(): boolean {
    return this.finished;
  }

  // ------------------------------------------------------------------ connection

  private setState(s: ClientState): void {
    this.state = s;
    this.emit('state', s);
  }

  private async connect(): Promise<void> {
    if (this.finished) return;
    this.timer = undefined;
    this.setState({ state: 'connecting', attempt: this.attempt });
    let token: string;
    try {
      token = await this.opts.getToken();
    } catch (e) {
      this.retry(this.attempt + 1, `getToken failed: ${String(e)}`);
      return;
    }
    if (this.finished) return;
    const claims = tokenClaims(token);
    if (claims.sub) this.userId = claims.sub;
    this.tokenExp = claims.exp ?? 0;
    const gen = ++this.gen;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.opts.url, ['labchat.v1', `bearer.${token}`]);
    } catch (e) {
      this.retry(this.attempt + 1, `could not open the socket: ${String(e)}`);
      return;
    }
    this.ws = ws;
    let opened = false;
    let errorText = '';
    ws.onopen = () => {
      if (gen !== this.gen) return;
      opened = true;
      this.attempt = 0;
      this.authRetried = false;
      this.onOpen(gen);
    };
    ws.onerror = (ev) => {
      const msg = (ev as { message?: unknown } | null)?.message;
      if (typeof msg === 'string') errorText = msg;
    };
    ws.onmessage = (ev) => {
      if (gen === this.gen) this.onFrame(typeof ev.data === 'string' ? ev.data : String(ev.data));
    };
    ws.onclose = (ev) => {
      if (gen !== this.gen) return;
      this.onClose(ev.code, ev.reason ?? '', opened, errorText);
    };
  }

  private onOpen(gen: number): void {
    this.setState({ state: 'open' });
    this.scheduleRefresh(gen);
    for (const w of this.openWaiters.splice(0)) w();
    for (const room of this.rooms.values()) void room.join();
    if (this.inboxListeners.size > 0) void this.subscribeInbox(gen);
  }

  private onClose(code: number, reason: string, opened: boolean, errorText: string): void {
    this.ws = null;
    clearTimeout(this.refreshTimer);
    const lost = new LabchatError(DISCONNECTED, `connection closed (${code}${reason ? ` ${reason}` : ''})`);
    for (const p of this.pending.values()) p.reject(lost);
    this.pending.clear();
    for (const room of this.rooms.values()) room.disconnected();
    if (this.finished) return;
    if (!opened) {
      // A refused handshake: with the `ws` package the error names the HTTP status; browsers say nothing.
      const status = Number(/\b(401|403)\b/.exec(errorText)?.[1] ?? 0);
      if (status) {
        if (!this.authRetried) {
          this.authRetried = true; // one more try, with a fresh token
          this.retry(0, `handshake refused (HTTP ${status})`, code);
          return;
        }
        this.fail(ClientErrorCodes.AUTH_REFUSED, `the server refused the token (HTTP ${status}) twice in a row`);
        return;
      }
      this.retry(this.attempt + 1, errorText || 'could not connect', code);
      return;
    }
    switch (code) {
      case CloseCodes.FORBIDDEN:
        this.fail(ClientErrorCodes.AUTH_REFUSED, `closed with 4003: ${reason || 'the token names another user or role'}`);
        return;
      case CloseCodes.POLICY:
        this.fail(ClientErrorCodes.POLICY, `closed with 1008: ${reason || 'rate limit exceeded for too long'}`);
        return;
      default:
        // 1001 / 1012 (node going away), 4001 (token expired: getToken() runs again), 1006
        // (node died): a prompt retry, spread over the first window.
        this.retry(1, reason || 'connection closed', code);
    }
  }

  private retry(attempt: number, reason: string, code = 0): void {
    this.attempt = Math.max(attempt, 1);
    if (this.attempt > this.reconnect.maxAttempts) {
      this.fail(ClientErrorCodes.GAVE_UP, `gave up after ${this.reconnect.maxAttempts} attempts: ${reason}`);
      return;
    }
    const delayMs = attempt === 0 ? 0 : backoffDelay(this.attempt, this.reconnect);
    this.setState({ state: 'reconnecting', attempt: this.attempt, delayMs, code, reason });
    this.timer = setTimeout(() => void this.connect(), delayMs);
  }

  private fail(code: string, message: string): void {
    this.finish(new LabchatError(code, message));
  }

  private finish(error: LabchatError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closed
      }
    }
    const closed = error ?? new LabchatError(ClientErrorCodes.CLOSED, 'the client is closed');
    for (const p of this.pending.values()) p.reject(closed);
    this.pending.clear();
    for (const room of [...this.rooms.values()]) room.finish(closed);
    this.openWaiters = [];
    this.setState(error ? { state: 'closed', error } : { state: 'closed' });
  }

  // ------------------------------------------------------------------ token refresh

  private scheduleRefresh(gen: number): void {
    clearTimeout(this.refreshTimer);
    if (!this.tokenExp) return;
    const left = this.tokenExp * 1000 - Date.now();
    const margin = this.opts.refreshBeforeMs ?? Math.min(60_000, Math.max(500, left / 4));
    this.refreshTimer = setTimeout(() => void this.refresh(gen), Math.max(0, left - margin));
  }

  private async refresh(gen: number): Promise<void> {
    if (gen !== this.gen || !this.isOpen()) return;
    let token: string;
    try {
      token = await this.opts.getToken();
    } catch {
      this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
      return;
    }
    const exp = tokenClaims(token).exp ?? 0;
    if (gen !== this.gen || !this.isOpen()) return;
    if (exp <= this.tokenExp) {
      // Not a newer token: refreshing with it would not extend (or would shorten) the connection.
      this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
      return;
    }
    try {
      await this.request('refreshToken', { token });
      if (gen !== this.gen) return;
      this.tokenExp = exp;
      this.scheduleRefresh(gen);
    } catch (e) {
      if (gen !== this.gen) return;
      // UNAUTHORIZED: the current token still holds; try again shortly (or reconnect on 4001).
      if (e instanceof LabchatError && e.code !== DISCONNECTED) {
        this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
      }
    }
  }

  // ------------------------------------------------------------------ frames in

  private onFrame(text: string): void {
    let frame: { event?: unknown; data?: unknown; id?: unknown };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const { event, data, id } = frame;
    if (typeof id === 'number') {
      const p = this.pending.get(id);
      if (p) {
        if (event === 'roomHistory') {
          p.onHistory?.(data as RoomHistoryData);
          return;
        }
        if (event === 'ack' || event === 'error') {
          this.pending.delete(id);
          if (event === 'ack') p.resolve(data);
          else {
            const err = data as ErrorData;
            p.reject(new LabchatError(err.code, err.message, err));
          }
          return;
        }
      }
    }
    const d = data as { requestId?: string };
    const room = typeof d?.requestId === 'string' ? this.rooms.get(d.requestId) : undefined;
    switch (event) {
      case 'message':
      case 'messagesDelivered':
      case 'messageReads':
      case 'messageEdited':
      case 'messageDeleted':
      case 'typing':
      case 'memberJoined':
      case 'memberLeft':
      case 'membersChanged':
        room?.onEvent(event, data);
        return;
      case 'inboxUpdate':
        for (const fn of [...this.inboxListeners]) fn(data as InboxRow, 'live');
        return;
      case 'error': {
        const err = data as ErrorData;
        const e = new LabchatError(err.code, err.message, err);
        if (room && err.code === 'FORBIDDEN') room.removed(e);
        this.emit('error', e);
        return;
      }
      default:
    }
  }

  // ------------------------------------------------------------------ inbox

  private async subscribeInbox(gen: number): Promise<void> {
    try {
      await this.request('subscribeInbox', {});
    } catch {
      return; // a reconnect subscribes again
    }
    if (gen !== this.gen) return;
    try {
      const page = await this.request('inbox', {});
      for (const row of page.rooms) for (const fn of [...this.inboxListeners]) fn(row, 'resync');
    } catch {
      // a reconnect re-reads it
    }
  }

  private async resyncInbox(gen: number, fn: InboxListener): Promise<void> {
    if (gen !== this.gen) return;
    try {
      const page = await this.request('inbox', {});
      for (const row of page.rooms) fn(row, 'resync');
    } catch {
      // a reconnect re-reads it
    }
  }
}

/** Creates a client; it connects at once. */
export function createClient(opts: ClientOptions): Client {
  return new Client(opts);
}
