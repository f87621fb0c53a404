// One room: its messages held by `seq` and emitted strictly in `seq` order, each once; joined again
// after every reconnect with `after` = the newest message held in order, paging `history {after}`
// while `hasMore`; sends queued and re-sent with the same clientMessageId until acknowledged;
// receipts coalesced and re-sent until acknowledged.

import { applyChange, isUnreadFor, type Change } from './changes.js';
import { Emitter } from './emitter.js';
import { Marks } from './marks.js';
import { Outbox } from './outbox.js';
import { ClientErrorCodes, DISCONNECTED, LabchatError, RETRY_MS, retryDelay, shouldRetry, sleep } from './errors.js';
import type {
  AckData,
  ChatMessage,
  ClientEvents,
  Member,
  MemberLeftData,
  MembersChangedData,
  MessageDeletedData,
  MessageEditedData,
  ReceiptsEventData,
  RoomHistoryData,
  SomeoneInRoom,
} from './protocol.js';

export interface RoomOptions {
  /** Unsent messages a room holds while disconnected; beyond, send() rejects with QUEUE_FULL. Default 1000. */
  maxQueuedSends?: number;
  /** The least time between two `typing` frames (ms); default 2000 (the server's own throttle). */
  typingIntervalMs?: number;
}

/** What a room needs of its client. */
export interface RoomHost {
  gen: number;
  userId: string;
  readonly roomOptions: RoomOptions;
  isOpen(): boolean;
  isFinished(): boolean;
  forget(room: Room): void;
  request<K extends keyof ClientEvents>(event: K, data: ClientEvents[K], onHistory?: (page: RoomHistoryData) => void): Promise<AckData[K]>;
}

export interface RoomEventMap {
  /** A message, strictly in `seq` order, each once. */
  message: ChatMessage;
  delivered: ReceiptsEventData;
  read: ReceiptsEventData;
  /** A held message was edited: its new form (already in `messages`, in its place). */
  edited: ChatMessage;
  /** A held message was deleted: its tombstone (no `message`; already in `messages`, in its place). */
  deleted: ChatMessage;
  /** The members now (after the join's list, or a memberJoined / memberLeft). */
  members: Member[];
  typing: SomeoneInRoom;
  /** The server no longer knows the newest message held (history wiped or restored): messages were cleared. */
  reset: void;
  /** The room is joined on the current connection (after each connect), caught up or catching up. */
  joined: void;
  /** The room failed for good (removed after losing access, FORBIDDEN on join). */
  error: LabchatError;
}

/** The answer to an `after` the server does not know (history wiped or restored): the room must reset. */
function isUnknownAfter(e: unknown): boolean {
  return e instanceof LabchatError && e.code === 'UNKNOWN_AFTER';
}

export class Room extends Emitter<RoomEventMap> {
  readonly requestId: string;
  /** The messages held, in `seq` order, with no hole. */
  readonly messages: ChatMessage[] = [];
  /** Messages of the room neither sent nor read by this user (from the join, kept up to date). */
  unread = 0;
  /** The oldest message neither sent nor read by this user, or null. */
  firstUnreadId: string | null = null;
  /** Whether the room is joined on the current connection. */
  joined = false;

  private readonly host: RoomHost;
  private lastSeq = 0;
  private byId = new Map<string, ChatMessage>();
  private ahead = new Map<number, ChatMessage>();
  /** Changes and receipts of messages not held yet, applied when they arrive; at most
   * LATE_LIMIT messages each (the oldest entry goes first: a message that never arrives, or a
   * page that will hold the change anyway, must not make them grow without end). */
  private lateChanges = new Map<string, Change[]>();
  private lateReceipts = new Map<string, { deliveredTo: ReceiptsEventData[]; readBy: ReceiptsEventData[] }>();
  private members = new Map<string, Member>();
  private membersNext: string | null = null;
  private outbox: Outbox;
  private marks: Marks;
  private filling = false;
  /** Whether a join page was taken: from then on, every seq above the first held is wanted. */
  private known = false;
  /** The last page after a cursor said hasMore: newer messages are still to fetch. */
  private moreAfter = false;
  private left = false;
  private lastTyping = 0;

  constructor(host: RoomHost, requestId: string) {
    super();
    this.host = host;
    this.requestId = requestId;
    this.outbox = new Outbox(requestId, host, host.roomOptions.maxQueuedSends ?? 1000, retryDelay);
    this.marks = new Marks(requestId, host, () => this.host.isOpen() && this.joined, retryDelay);
  }

  /** The members present (from the join, kept up to date by memberJoined / memberLeft /
   * membersChanged). The join lists at most 100: page the rest with `loadMembers`. */
  get memberList(): Member[] {
    return [...this.members.values()];
  }

  /** How many users are present in the room in all (from the join and `membersChanged`). */
  membersCount = 0;

  /** Pages the room's members after the ones held (`members {after}`) until every one is held. */
  async loadMembers(): Promise<Member[]> {
    let after = this.membersNext;
    while (after) {
      const page = await this.host.request('members', { requestId: this.requestId, after });
      for (const m of page.members) this.members.set(m.userId, m);
      this.membersCount = page.membersCount;
      after = page.next;
    }
    this.membersNext = null;
    this.emit('members', this.memberList);
    return this.memberList;
  }

  /** Sends a message; resolves with the stored message once the server acknowledged it (stored once). */
  send(text: string): Promise<ChatMessage> {
    if (this.left || this.host.isFinished()) {
      return Promise.reject(new LabchatError(this.left ? ClientErrorCodes.LEFT : ClientErrorCodes.CLOSED, 'the room is no longer open'));
    }
    return this.outbox.push(text);
  }

  /** Edits one's own message (within the server's edit window); resolves with the message as
   * stored now (with `editedAt`), rejects with the server's error (FORBIDDEN, BAD_REQUEST, …). */
  async edit(messageId: string, text: string): Promise<ChatMessage> {
    this.ensureOpen();
    const m = await this.host.request('editMessage', { requestId: this.requestId, messageId, message: text });
    this.replaceHeld(m);
    return m;
  }

  /** Deletes a message (one's own, or any as a LAB user); resolves with its tombstone (no
   * `message`, with `deletedAt` and `deletedBy`), rejects with the server's error. */
  async delete(messageId: string): Promise<ChatMessage> {
    this.ensureOpen();
    const m = await this.host.request('deleteMessage', { requestId: this.requestId, messageId });
    this.replaceHeld(m);
    return m;
  }

  /** Marks messages delivered to this user; resolves once acknowledged (re-sent after reconnects). */
  markDelivered(ids: string[]): Promise<void> {
    return this.marks.mark('ackMessages', ids);
  }

  /** Marks messages read by this user; resolves once acknowledged (re-sent after reconnects). */
  markRead(ids: string[]): Promise<void> {
    return this.marks.mark('readMessages', ids);
  }

  /** Tells the others this user is typing (at most once per typingIntervalMs; dropped while disconnected). */
  typing(): void {
    const now = Date.now();
    if (!this.host.isOpen() || now - this.lastTyping < (this.host.roomOptions.typingIntervalMs ?? 2000)) return;
    this.lastTyping = now;
    this.host.request('typing', { requestId: this.requestId }).catch(() => undefined);
  }

  /** Loads up to `limit` messages older than the oldest held, puts them first in `messages` and returns them. */
  async loadOlder(limit?: number): Promise<{ messages: ChatMessage[]; hasMore: boolean }> {
    const oldest = this.messages[0];
    if (!oldest) return { messages: [], hasMore: false };
    let page: RoomHistoryData | undefined;
    const data: ClientEvents['history'] = { requestId: this.requestId, before: oldest.id };
    if (limit !== undefined) data.limit = limit;
    await this.host.request('history', data, (p) => (page = p));
    const older = (page?.messages ?? []).filter((m) => m.seq < (this.messages[0]?.seq ?? 0) && !this.byId.has(m.id));
    for (const m of older) this.byId.set(m.id, m);
    this.messages.unshift(...older);
    return { messages: older, hasMore: page?.hasMore ?? false };
  }

  /** Leaves the room: no more events; queued sends and marks are rejected with ROOM_LEFT. */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.host.forget(this);
    if (this.host.isOpen() && this.joined) this.host.request('leaveRoom', { requestId: this.requestId }).catch(() => undefined);
    this.joined = false;
    this.finish(new LabchatError(ClientErrorCodes.LEFT, 'the room was left'));
  }

  // ------------------------------------------------------------------ called by the client

  /** Joins on the current connection, catching up from the newest message held. */
  async join(): Promise<void> {
    if (this.left) return;
    const gen = this.host.gen;
    const newest = this.messages[this.messages.length - 1];
    const data: ClientEvents['joinRoom'] = { requestId: this.requestId };
    if (newest) data.after = newest.id;
    let hasMore = false;
    let stale = false;
    try {
      await this.host.request('joinRoom', data, (page) => {
        // Live events may follow the page before the ack: the room counts as joined from here.
        if (gen !== this.host.gen) return;
        hasMore = newest !== undefined && page.hasMore;
        this.moreAfter = hasMore;
        this.joined = true;
        this.applyJoinPage(page, newest !== undefined);
        // The replay before this page left out changes of held messages (too many changed): those
        // below `changesFrom` (all, if null) may be stale.
        const oldest = this.messages[0];
        stale = page.changesCut === true && oldest !== undefined && (page.changesFrom == null || oldest.seq < page.changesFrom);
      });
    } catch (e) {
      if (gen !== this.host.gen || this.left) return;
      if (isUnknownAfter(e)) {
        this.resetMessages();
        return this.join();
      }
      if (e instanceof LabchatError && e.code === DISCONNECTED) return;
      if (shouldRetry(e)) {
        setTimeout(() => void (gen === this.host.gen && this.join()), retryDelay(e));
        return;
      }
      this.removed(e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e)));
      return;
    }
    if (gen !== this.host.gen) return;
    if (stale) {
      // Start again from the latest page rather than show stale messages ('reset').
      this.resetMessages();
      return this.join();
    }
    this.joined = true;
    this.emit('joined', undefined);
    this.outbox.flush();
    this.marks.flush();
    if (hasMore) this.moreAfter = true;
    await this.fill();
  }

  disconnected(): void {
    this.joined = false;
  }

  /** The server removed this user from the room (lost access), or a join was refused. */
  removed(e: LabchatError): void {
    if (this.left) return;
    this.left = true;
    this.joined = false;
    this.host.forget(this);
    this.emit('error', e);
    this.finish(e);
  }

  /** Rejects everything still waiting. */
  finish(e: LabchatError): void {
    this.left = true;
    this.outbox.finish(e);
    this.marks.finish(e);
  }

  onEvent(event: string, data: unknown): void {
    switch (event) {
      case 'message':
        if (this.joined) this.accept(data as ChatMessage, true);
        return;
      case 'messagesDelivered':
        this.onReceipts('deliveredTo', data as ReceiptsEventData);
        return;
      case 'messageReads':
        this.onReceipts('readBy', data as ReceiptsEventData);
        return;
      case 'messageEdited':
        this.onChange({ kind: 'edited', data: data as MessageEditedData });
        return;
      case 'messageDeleted':
        this.onChange({ kind: 'deleted', data: data as MessageDeletedData });
        return;
      case 'typing':
        this.emit('typing', data as SomeoneInRoom);
        return;
      case 'memberJoined': {
        const m = data as SomeoneInRoom;
        this.members.set(m.userId, { userId: m.userId, role: m.role });
        this.emit('members', this.memberList);
        return;
      }
      case 'memberLeft':
        if (this.members.delete((data as MemberLeftData).userId)) this.emit('members', this.memberList);
        return;
      case 'membersChanged': {
        const c = data as MembersChangedData;
        for (const m of c.joined) this.members.set(m.userId, m);
        for (const id of c.left) this.members.delete(id);
        this.membersCount = c.membersCount;
        this.emit('members', this.memberList);
        return;
      }
      default:
    }
  }

  // ------------------------------------------------------------------ messages in seq order

  private applyJoinPage(page: RoomHistoryData, withAfter: boolean): void {
    if (!this.known) {
      // The first join starts at the latest page; later joins continue from what is held (a room
      // that was empty holds nothing, and its next message is seq 1).
      this.known = true;
      const first = page.messages[0];
      this.lastSeq = first ? first.seq - 1 : 0;
    }
    for (const m of page.messages) this.accept(m, false);
    if (page.unread !== undefined) this.unread = page.unread;
    if (page.firstUnreadId !== undefined) this.firstUnreadId = page.firstUnreadId;
    if (page.members) {
      this.members = new Map(page.members.map((m) => [m.userId, m]));
      this.membersCount = page.membersCount ?? page.members.length;
      this.membersNext = page.membersNext ?? null;
      this.emit('members', this.memberList);
    }
  }

  /** Takes a message from a page or live: holds it once, emits it when every lower seq is held. */
  private accept(m: ChatMessage, live: boolean): void {
    if (m.seq <= this.lastSeq) return;
    if (this.ahead.has(m.seq)) {
      // A page's copy was read after the one waiting (texts and receipts as they are now).
      if (!live) this.ahead.set(m.seq, m);
      return;
    }
    if (m.seq > this.lastSeq + 1) {
      this.ahead.set(m.seq, m);
      if (this.joined) void this.fill();
      return;
    }
    this.append(m, live);
    for (let next = this.ahead.get(this.lastSeq + 1); next; next = this.ahead.get(this.lastSeq + 1)) {
      this.ahead.delete(next.seq);
      this.append(next, true);
    }
  }

  private append(m: ChatMessage, live: boolean): void {
    for (const change of this.lateChanges.get(m.id) ?? []) m = applyChange(m, change);
    this.lateChanges.delete(m.id);
    this.lastSeq = m.seq;
    this.messages.push(m);
    this.byId.set(m.id, m);
    const late = this.lateReceipts.get(m.id);
    if (late) {
      this.lateReceipts.delete(m.id);
      for (const r of late.deliveredTo) addReceipt(m.deliveredTo, r);
      for (const r of late.readBy) addReceipt(m.readBy, r);
    }
    if (live && isUnreadFor(m, this.host.userId)) {
      this.unread += 1;
      if (this.firstUnreadId === null) this.firstUnreadId = m.id;
    }
    this.emit('message', m);
  }

  /** Pages `history {after}` until nothing newer is missing (a hole before a live message, or hasMore). */
  private async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    const gen = this.host.gen;
    let idle = 0;
    try {
      while ((this.moreAfter || this.ahead.size > 0) && gen === this.host.gen && this.joined && idle < 20) {
        const newest = this.messages[this.messages.length - 1];
        const data: ClientEvents['history'] = { requestId: this.requestId };
        if (newest) data.after = newest.id;
        else {
          // Nothing held yet (the room was empty): page back from the oldest message received to seq 1.
          const oldest = Math.min(...this.ahead.keys());
          const m = this.ahead.get(oldest);
          if (m) data.before = m.id;
        }
        let page: RoomHistoryData | undefined;
        const before = this.lastSeq;
        try {
          await this.host.request('history', data, (p) => (page = p));
        } catch (e) {
          if (isUnknownAfter(e)) {
            this.resetMessages();
            void this.join();
            return;
          }
          if (!shouldRetry(e) || (e instanceof LabchatError && e.code === DISCONNECTED)) return;
          await sleep(retryDelay(e));
          continue;
        }
        if (!page) return;
        for (const m of page.messages) this.accept(m, false);
        this.moreAfter = page.hasMore && newest !== undefined;
        if (this.lastSeq === before) {
          idle += 1;
          await sleep(RETRY_MS);
        } else idle = 0;
      }
    } finally {
      this.filling = false;
    }
  }

  private resetMessages(): void {
    this.messages.length = 0;
    this.byId.clear();
    this.ahead.clear();
    this.lastSeq = 0;
    this.known = false;
    this.emit('reset', undefined);
  }

  private ensureOpen(): void {
    if (this.left || this.host.isFinished()) {
      throw new LabchatError(this.left ? ClientErrorCodes.LEFT : ClientErrorCodes.CLOSED, 'the room is no longer open');
    }
  }

  /** Puts `m` in the place of the held message with its id (in `messages` or waiting for a lower seq). */
  private replaceHeld(m: ChatMessage): boolean {
    if (this.byId.has(m.id)) {
      const first = this.messages[0]?.seq ?? 0;
      let i = m.seq - first;
      if (this.messages[i]?.id !== m.id) i = this.messages.findIndex((x) => x.id === m.id);
      if (i >= 0) this.messages[i] = m;
      this.byId.set(m.id, m);
      return true;
    }
    const waiting = this.ahead.get(m.seq);
    if (waiting?.id === m.id) {
      this.ahead.set(m.seq, m);
      return true;
    }
    return false;
  }

  /** A `messageEdited` / `messageDeleted`: applied to the held message (emitting `edited` /
   * `deleted`), or kept until the message arrives when it is newer than those held. */
  private onChange(change: Change): void {
    const { messageId, seq } = change.data;
    const held = this.byId.get(messageId) ?? (this.ahead.get(seq)?.id === messageId ? this.ahead.get(seq) : undefined);
    if (!held) {
      // Older than the oldest held: a page loaded later shows the change. Newer: apply on arrival.
      if (seq > this.lastSeq) bounded(this.lateChanges).set(messageId, [...(this.lateChanges.get(messageId) ?? []), change]);
      return;
    }
    const me = this.host.userId;
    const wasUnread = this.byId.has(messageId) && isUnreadFor(held, me);
    const next = applyChange(held, change);
    this.replaceHeld(next);
    if (change.kind === 'deleted' && wasUnread) {
      this.unread = Math.max(0, this.unread - 1);
      if (this.firstUnreadId === messageId) {
        const first = this.messages.find((x) => isUnreadFor(x, me));
        this.firstUnreadId = this.unread > 0 && first ? first.id : null;
      }
    }
    this.emit(change.kind, next);
  }

  private onReceipts(field: 'deliveredTo' | 'readBy', ev: ReceiptsEventData): void {
    // Before a join's page, receipts are the replay of what changed on messages up to the newest
    // held: one not held is older than every held message, and no page will bring it.
    if (!this.joined && !ev.messages.some((id) => this.byId.has(id))) return;
    for (const id of ev.messages) {
      const m = this.byId.get(id);
      if (m) addReceipt(m[field], ev);
      else if (!this.joined) continue;
      else {
        let late = this.lateReceipts.get(id);
        if (!late) {
          late = { deliveredTo: [], readBy: [] };
          bounded(this.lateReceipts).set(id, late);
        }
        late[field].push(ev);
      }
    }
    if (field === 'readBy' && ev.userId === this.host.userId) {
      this.unread = Math.max(0, this.unread - ev.messages.length);
      if (this.unread === 0) this.firstUnreadId = null;
      else if (this.firstUnreadId !== null && ev.messages.includes(this.firstUnreadId)) {
        const me = this.host.userId;
        const next = this.messages.find((m) => isUnreadFor(m, me));
        this.firstUnreadId = next ? next.id : null;
      }
    }
    this.emit(field === 'deliveredTo' ? 'delivered' : 'read', ev);
  }
}

/** The most messages whose changes or receipts wait for them to arrive. */
const LATE_LIMIT = 10_000;

/** `map`, with its oldest entry dropped when it is full. */
function bounded<V>(map: Map<string, V>): Map<string, V> {
  if (map.size >= LATE_LIMIT) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  return map;
}

function addReceipt(list: { userId: string; at: string }[], ev: { userId: string; at: string }): void {
  if (!list.some((r) => r.userId === ev.userId)) list.push({ userId: ev.userId, at: ev.at });
}
