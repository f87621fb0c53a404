// @labchat/client, built from clients/js by `npm run build && node scripts/bundle.mjs --write`.
// Generated: do not edit (clients/js/test/bundle.test.mjs checks it matches a fresh build).

const $backoff = (() => {
  // Full-jitter exponential backoff: the delay of attempt n (1, 2, …) is drawn uniformly from
  // [0, min(maxDelayMs, minDelayMs · 2^(n-1))], so clients that lost their node together stay
  // spread over the whole window, at the cap too.
  /** The window (ms) attempt `attempt` (1-based) draws its delay from. */
  function backoffWindow(attempt, opts) {
      const exp = opts.minDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30);
      return Math.min(opts.maxDelayMs, exp);
  }
  /** A delay drawn uniformly from attempt `attempt`'s window. */
  function backoffDelay(attempt, opts, random = Math.random) {
      return Math.floor(random() * backoffWindow(attempt, opts));
  }
  return { backoffWindow, backoffDelay };
})();

const $emitter = (() => {
  // A tiny typed event emitter (no dependency, works in browsers and Node).
  class Emitter {
      constructor() {
          this.listeners = new Map();
      }
      /** Calls `fn` for each `event`; returns a function that removes it. */
      on(event, fn) {
          let set = this.listeners.get(event);
          if (!set) {
              set = new Set();
              this.listeners.set(event, set);
          }
          set.add(fn);
          return () => this.off(event, fn);
      }
      off(event, fn) {
          this.listeners.get(event)?.delete(fn);
      }
      emit(event, value) {
          const set = this.listeners.get(event);
          if (!set)
              return;
          for (const fn of [...set]) {
              try {
                  fn(value);
              }
              catch (e) {
                  // A listener's bug must not break the client's bookkeeping: report it asynchronously.
                  setTimeout(() => {
                      throw e;
                  }, 0);
              }
          }
      }
  }
  return { Emitter };
})();

const $errors = (() => {
  // The errors the client rejects promises with and reports in its `closed` state.
  /** The server answered a frame with `error`. */
  class LabchatError extends Error {
      constructor(code, message, data) {
          super(`${code}: ${message}`);
          this.name = 'LabchatError';
          this.code = code;
          this.data = data;
      }
  }
  /** Codes of errors the client makes itself (never sent by the server). */
  const ClientErrorCodes = {
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
  };
  /** A request could not be sent, or its connection closed before the reply. */
  const DISCONNECTED = 'DISCONNECTED';
  /** Whether a failed frame should be sent again (same frame, same clientMessageId) later: as the
   * server's `retryable` says (the library always sends a clientMessageId, so an `INTERNAL` on a
   * send is retryable), and after a lost connection. `UNAUTHORIZED` (retryable with a new token) is
   * the token refresh's own affair. */
  function shouldRetry(e) {
      if (!(e instanceof LabchatError))
          return false;
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
  const RETRY_MS = 500;
  function retryDelay(e) {
      const after = e instanceof LabchatError ? e.data?.retryAfterMs : undefined;
      return after ?? RETRY_MS + Math.floor(Math.random() * RETRY_MS);
  }
  function sleep(ms) {
      return new Promise((resolve) => setTimeout(resolve, ms));
  }
  return { LabchatError, ClientErrorCodes, DISCONNECTED, shouldRetry, RETRY_MS, retryDelay, sleep };
})();

const $protocol = (() => {
  // The wire types of labchat's protocol v1 (docs/protocol.md). Each interface mirrors one schema of
  // docs/asyncapi.yaml's `components.schemas` (named in its comment); test/types.test.mjs checks
  // every field and whether it is required against that file, so the contract has one source.
  /** Close codes the server sends (asyncapi: CloseCode), plus 1012 (a node restarting). */
  const CloseCodes = {
      GOING_AWAY: 1001,
      PROTOCOL_ERROR: 1002,
      INVALID_DATA: 1007,
      POLICY: 1008,
      TOO_BIG: 1009,
      RESTART: 1012,
      TRY_AGAIN_LATER: 1013,
      TOKEN_EXPIRED: 4001,
      FORBIDDEN: 4003,
  };
  return { CloseCodes };
})();

const $changes = (() => {
  // Edits and deletes of held messages: the new form of a message after `messageEdited` /
  // `messageDeleted`, and the changes that reach a room before the message they change.
  /** The message after the change: a new object (the old one is left as it was). */
  function applyChange(m, change) {
      if (change.kind === 'edited') {
          // An edit never revives a tombstone (the server refuses to edit a deleted message).
          if (m.deletedAt !== undefined)
              return m;
          return { ...m, message: change.data.message, editedAt: change.data.editedAt };
      }
      // A tombstone keeps neither the text nor the time of an edit, as the server's.
      const { message: _text, editedAt: _edited, ...rest } = m;
      return { ...rest, deletedAt: change.data.deletedAt, deletedBy: change.data.deletedBy };
  }
  /** Whether `m` counts as unread for `userId`: not sent by them, not read by them, not deleted. */
  function isUnreadFor(m, userId) {
      return m.deletedAt === undefined && m.senderId !== userId && !m.readBy.some((r) => r.userId === userId);
  }
  return { applyChange, isUnreadFor };
})();

const $marks = (() => {
  const { ClientErrorCodes, DISCONNECTED, LabchatError, shouldRetry } = $errors;
  // Receipts (`ackMessages` / `readMessages`) of one room: ids coalesced into frames of at most 500,
  // re-sent after a reconnect (once the room is joined again) until acknowledged.
  const MAX_IDS = 500;
  class Marks {
      constructor(requestId, host, 
      /** Whether frames may go now (connected, and the room joined). */
      ready, retryDelay) {
          this.requestId = requestId;
          this.host = host;
          this.ready = ready;
          this.retryDelay = retryDelay;
          this.waiting = { ackMessages: new Map(), readMessages: new Map() };
          this.marking = { ackMessages: new Set(), readMessages: new Set() };
          this.markRejects = new Set();
          this.closed = false;
      }
      /** Rejects every waiting mark with `e`; later marks are refused. */
      finish(e) {
          this.closed = true;
          for (const r of this.markRejects)
              r(e);
          this.markRejects.clear();
          this.waiting.ackMessages.clear();
          this.waiting.readMessages.clear();
          clearTimeout(this.markTimer);
      }
      mark(kind, ids) {
          if (this.closed)
              return Promise.reject(new LabchatError(ClientErrorCodes.LEFT, 'the room is no longer open'));
          const unique = [...new Set(ids.map((id) => id.toLowerCase()))];
          if (unique.length === 0)
              return Promise.resolve();
          return new Promise((resolve, reject) => {
              let left = unique.length;
              const done = () => {
                  left -= 1;
                  if (left === 0) {
                      this.markRejects.delete(reject);
                      resolve();
                  }
              };
              this.markRejects.add(reject);
              for (const id of unique) {
                  const waiters = this.waiting[kind].get(id) ?? [];
                  waiters.push(done);
                  this.waiting[kind].set(id, waiters);
              }
              if (this.markTimer === undefined)
                  this.markTimer = setTimeout(() => this.flush(), 0);
          });
      }
      flush() {
          clearTimeout(this.markTimer);
          this.markTimer = undefined;
          if (!this.ready())
              return;
          for (const kind of ['ackMessages', 'readMessages']) {
              const ids = [...this.waiting[kind].keys()].filter((id) => !this.marking[kind].has(id));
              for (let i = 0; i < ids.length; i += MAX_IDS)
                  this.send(kind, ids.slice(i, i + MAX_IDS));
          }
      }
      send(kind, ids) {
          for (const id of ids)
              this.marking[kind].add(id);
          const release = () => ids.forEach((id) => this.marking[kind].delete(id));
          this.host.request(kind, { requestId: this.requestId, messages: ids }).then(() => {
              release();
              for (const id of ids) {
                  const waiters = this.waiting[kind].get(id);
                  this.waiting[kind].delete(id);
                  waiters?.forEach((w) => w());
              }
          }, (e) => {
              release();
              if (e instanceof LabchatError && e.code === DISCONNECTED)
                  return; // re-sent after the rejoin
              if (shouldRetry(e)) {
                  setTimeout(() => this.flush(), this.retryDelay(e));
                  return;
              }
              const err = e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e));
              for (const id of ids)
                  this.waiting[kind].delete(id);
              for (const r of this.markRejects)
                  r(err);
              this.markRejects.clear();
          });
      }
  }
  return { Marks };
})();

const $outbox = (() => {
  const { ClientErrorCodes, DISCONNECTED, LabchatError, shouldRetry } = $errors;
  // The sends of one room: each with its clientMessageId (a UUID), queued while disconnected
  // (bounded), re-sent with the same id after a reconnect until acknowledged, so stored exactly once.
  class Outbox {
      constructor(requestId, host, max, retryDelay) {
          this.requestId = requestId;
          this.host = host;
          this.max = max;
          this.retryDelay = retryDelay;
          this.queue = [];
      }
      /** Queues a send and sends it when connected; resolves with the stored message. */
      push(text) {
          return new Promise((resolve, reject) => {
              if (this.queue.length >= this.max) {
                  reject(new LabchatError(ClientErrorCodes.QUEUE_FULL, `${this.max} messages are already waiting to be sent`));
                  return;
              }
              this.queue.push({ clientMessageId: globalThis.crypto.randomUUID(), text, inFlight: false, resolve, reject });
              this.flush();
          });
      }
      /** Rejects every queued send with `e`. */
      finish(e) {
          for (const o of this.queue.splice(0))
              o.reject(e);
      }
      flush() {
          if (!this.host.isOpen())
              return;
          for (const o of this.queue) {
              if (!o.inFlight)
                  this.sendOne(o);
          }
      }
      sendOne(o) {
          o.inFlight = true;
          this.host
              .request('message', { requestId: this.requestId, message: o.text, clientMessageId: o.clientMessageId })
              .then((stored) => {
              const i = this.queue.indexOf(o);
              if (i >= 0)
                  this.queue.splice(i, 1);
              o.resolve(stored);
          }, (e) => {
              o.inFlight = false;
              if (!this.queue.includes(o))
                  return;
              if (e instanceof LabchatError && e.code === DISCONNECTED)
                  return; // re-sent on the next open
              if (shouldRetry(e)) {
                  setTimeout(() => this.queue.includes(o) && !o.inFlight && this.host.isOpen() && this.sendOne(o), this.retryDelay(e));
                  return;
              }
              this.queue.splice(this.queue.indexOf(o), 1);
              o.reject(e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e)));
          });
      }
  }
  return { Outbox };
})();

const $room = (() => {
  const { applyChange, isUnreadFor } = $changes;
  const { Emitter } = $emitter;
  const { Marks } = $marks;
  const { Outbox } = $outbox;
  const { ClientErrorCodes, DISCONNECTED, LabchatError, RETRY_MS, retryDelay, shouldRetry, sleep } = $errors;
  // One room: its messages held by `seq` and emitted strictly in `seq` order, each once; joined again
  // after every reconnect with `after` = the newest message held in order, paging `history {after}`
  // while `hasMore`; sends queued and re-sent with the same clientMessageId until acknowledged;
  // receipts coalesced and re-sent until acknowledged.
  /** The answer to an `after` the server does not know (history wiped or restored): the room must reset. */
  function isUnknownAfter(e) {
      return e instanceof LabchatError && e.code === 'UNKNOWN_AFTER';
  }
  class Room extends Emitter {
      constructor(host, requestId) {
          super();
          /** The messages held, in `seq` order, with no hole. */
          this.messages = [];
          /** Messages of the room neither sent nor read by this user (from the join, kept up to date). */
          this.unread = 0;
          /** The oldest message neither sent nor read by this user, or null. */
          this.firstUnreadId = null;
          /** Whether the room is joined on the current connection. */
          this.joined = false;
          this.lastSeq = 0;
          this.byId = new Map();
          this.ahead = new Map();
          /** Changes and receipts of messages not held yet, applied when they arrive; at most
           * LATE_LIMIT messages each (the oldest entry goes first: a message that never arrives, or a
           * page that will hold the change anyway, must not make them grow without end). */
          this.lateChanges = new Map();
          this.lateReceipts = new Map();
          this.members = new Map();
          this.membersNext = null;
          this.filling = false;
          /** Whether a join page was taken: from then on, every seq above the first held is wanted. */
          this.known = false;
          /** The last page after a cursor said hasMore: newer messages are still to fetch. */
          this.moreAfter = false;
          this.left = false;
          this.lastTyping = 0;
          /** How many users are present in the room in all (from the join and `membersChanged`). */
          this.membersCount = 0;
          this.host = host;
          this.requestId = requestId;
          this.outbox = new Outbox(requestId, host, host.roomOptions.maxQueuedSends ?? 1000, retryDelay);
          this.marks = new Marks(requestId, host, () => this.host.isOpen() && this.joined, retryDelay);
      }
      /** The members present (from the join, kept up to date by memberJoined / memberLeft /
       * membersChanged). The join lists at most 100: page the rest with `loadMembers`. */
      get memberList() {
          return [...this.members.values()];
      }
      /** Pages the room's members after the ones held (`members {after}`) until every one is held. */
      async loadMembers() {
          let after = this.membersNext;
          while (after) {
              const page = await this.host.request('members', { requestId: this.requestId, after });
              for (const m of page.members)
                  this.members.set(m.userId, m);
              this.membersCount = page.membersCount;
              after = page.next;
          }
          this.membersNext = null;
          this.emit('members', this.memberList);
          return this.memberList;
      }
      /** Sends a message; resolves with the stored message once the server acknowledged it (stored once). */
      send(text) {
          if (this.left || this.host.isFinished()) {
              return Promise.reject(new LabchatError(this.left ? ClientErrorCodes.LEFT : ClientErrorCodes.CLOSED, 'the room is no longer open'));
          }
          return this.outbox.push(text);
      }
      /** Edits one's own message (within the server's edit window); resolves with the message as
       * stored now (with `editedAt`), rejects with the server's error (FORBIDDEN, BAD_REQUEST, …). */
      async edit(messageId, text) {
          this.ensureOpen();
          const m = await this.host.request('editMessage', { requestId: this.requestId, messageId, message: text });
          this.replaceHeld(m);
          return m;
      }
      /** Deletes a message (one's own, or any as a LAB user); resolves with its tombstone (no
       * `message`, with `deletedAt` and `deletedBy`), rejects with the server's error. */
      async delete(messageId) {
          this.ensureOpen();
          const m = await this.host.request('deleteMessage', { requestId: this.requestId, messageId });
          this.replaceHeld(m);
          return m;
      }
      /** Marks messages delivered to this user; resolves once acknowledged (re-sent after reconnects). */
      markDelivered(ids) {
          return this.marks.mark('ackMessages', ids);
      }
      /** Marks messages read by this user; resolves once acknowledged (re-sent after reconnects). */
      markRead(ids) {
          return this.marks.mark('readMessages', ids);
      }
      /** Tells the others this user is typing (at most once per typingIntervalMs; dropped while disconnected). */
      typing() {
          const now = Date.now();
          if (!this.host.isOpen() || now - this.lastTyping < (this.host.roomOptions.typingIntervalMs ?? 2000))
              return;
          this.lastTyping = now;
          this.host.request('typing', { requestId: this.requestId }).catch(() => undefined);
      }
      /** Loads up to `limit` messages older than the oldest held, puts them first in `messages` and returns them. */
      async loadOlder(limit) {
          const oldest = this.messages[0];
          if (!oldest)
              return { messages: [], hasMore: false };
          let page;
          const data = { requestId: this.requestId, before: oldest.id };
          if (limit !== undefined)
              data.limit = limit;
          await this.host.request('history', data, (p) => (page = p));
          const older = (page?.messages ?? []).filter((m) => m.seq < (this.messages[0]?.seq ?? 0) && !this.byId.has(m.id));
          for (const m of older)
              this.byId.set(m.id, m);
          this.messages.unshift(...older);
          return { messages: older, hasMore: page?.hasMore ?? false };
      }
      /** Leaves the room: no more events; queued sends and marks are rejected with ROOM_LEFT. */
      leave() {
          if (this.left)
              return;
          this.left = true;
          this.host.forget(this);
          if (this.host.isOpen() && this.joined)
              this.host.request('leaveRoom', { requestId: this.requestId }).catch(() => undefined);
          this.joined = false;
          this.finish(new LabchatError(ClientErrorCodes.LEFT, 'the room was left'));
      }
      // ------------------------------------------------------------------ called by the client
      /** Joins on the current connection, catching up from the newest message held. */
      async join() {
          if (this.left)
              return;
          const gen = this.host.gen;
          const newest = this.messages[this.messages.length - 1];
          const data = { requestId: this.requestId };
          if (newest)
              data.after = newest.id;
          let hasMore = false;
          let stale = false;
          try {
              await this.host.request('joinRoom', data, (page) => {
                  // Live events may follow the page before the ack: the room counts as joined from here.
                  if (gen !== this.host.gen)
                      return;
                  hasMore = newest !== undefined && page.hasMore;
                  this.moreAfter = hasMore;
                  this.joined = true;
                  this.applyJoinPage(page, newest !== undefined);
                  // The replay before this page left out changes of held messages (too many changed): those
                  // below `changesFrom` (all, if null) may be stale.
                  const oldest = this.messages[0];
                  stale = page.changesCut === true && oldest !== undefined && (page.changesFrom == null || oldest.seq < page.changesFrom);
              });
          }
          catch (e) {
              if (gen !== this.host.gen || this.left)
                  return;
              if (isUnknownAfter(e)) {
                  this.resetMessages();
                  return this.join();
              }
              if (e instanceof LabchatError && e.code === DISCONNECTED)
                  return;
              if (shouldRetry(e)) {
                  setTimeout(() => void (gen === this.host.gen && this.join()), retryDelay(e));
                  return;
              }
              this.removed(e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e)));
              return;
          }
          if (gen !== this.host.gen)
              return;
          if (stale) {
              // Start again from the latest page rather than show stale messages ('reset').
              this.resetMessages();
              return this.join();
          }
          this.joined = true;
          this.emit('joined', undefined);
          this.outbox.flush();
          this.marks.flush();
          if (hasMore)
              this.moreAfter = true;
          await this.fill();
      }
      disconnected() {
          this.joined = false;
      }
      /** The server removed this user from the room (lost access), or a join was refused. */
      removed(e) {
          if (this.left)
              return;
          this.left = true;
          this.joined = false;
          this.host.forget(this);
          this.emit('error', e);
          this.finish(e);
      }
      /** Rejects everything still waiting. */
      finish(e) {
          this.left = true;
          this.outbox.finish(e);
          this.marks.finish(e);
      }
      onEvent(event, data) {
          switch (event) {
              case 'message':
                  if (this.joined)
                      this.accept(data, true);
                  return;
              case 'messagesDelivered':
                  this.onReceipts('deliveredTo', data);
                  return;
              case 'messageReads':
                  this.onReceipts('readBy', data);
                  return;
              case 'messageEdited':
                  this.onChange({ kind: 'edited', data: data });
                  return;
              case 'messageDeleted':
                  this.onChange({ kind: 'deleted', data: data });
                  return;
              case 'typing':
                  this.emit('typing', data);
                  return;
              case 'memberJoined': {
                  const m = data;
                  this.members.set(m.userId, { userId: m.userId, role: m.role });
                  this.emit('members', this.memberList);
                  return;
              }
              case 'memberLeft':
                  if (this.members.delete(data.userId))
                      this.emit('members', this.memberList);
                  return;
              case 'membersChanged': {
                  const c = data;
                  for (const m of c.joined)
                      this.members.set(m.userId, m);
                  for (const id of c.left)
                      this.members.delete(id);
                  this.membersCount = c.membersCount;
                  this.emit('members', this.memberList);
                  return;
              }
              default:
          }
      }
      // ------------------------------------------------------------------ messages in seq order
      applyJoinPage(page, withAfter) {
          if (!this.known) {
              // The first join starts at the latest page; later joins continue from what is held (a room
              // that was empty holds nothing, and its next message is seq 1).
              this.known = true;
              const first = page.messages[0];
              this.lastSeq = first ? first.seq - 1 : 0;
          }
          for (const m of page.messages)
              this.accept(m, false);
          if (page.unread !== undefined)
              this.unread = page.unread;
          if (page.firstUnreadId !== undefined)
              this.firstUnreadId = page.firstUnreadId;
          if (page.members) {
              this.members = new Map(page.members.map((m) => [m.userId, m]));
              this.membersCount = page.membersCount ?? page.members.length;
              this.membersNext = page.membersNext ?? null;
              this.emit('members', this.memberList);
          }
      }
      /** Takes a message from a page or live: holds it once, emits it when every lower seq is held. */
      accept(m, live) {
          if (m.seq <= this.lastSeq)
              return;
          if (this.ahead.has(m.seq)) {
              // A page's copy was read after the one waiting (texts and receipts as they are now).
              if (!live)
                  this.ahead.set(m.seq, m);
              return;
          }
          if (m.seq > this.lastSeq + 1) {
              this.ahead.set(m.seq, m);
              if (this.joined)
                  void this.fill();
              return;
          }
          this.append(m, live);
          for (let next = this.ahead.get(this.lastSeq + 1); next; next = this.ahead.get(this.lastSeq + 1)) {
              this.ahead.delete(next.seq);
              this.append(next, true);
          }
      }
      append(m, live) {
          for (const change of this.lateChanges.get(m.id) ?? [])
              m = applyChange(m, change);
          this.lateChanges.delete(m.id);
          this.lastSeq = m.seq;
          this.messages.push(m);
          this.byId.set(m.id, m);
          const late = this.lateReceipts.get(m.id);
          if (late) {
              this.lateReceipts.delete(m.id);
              for (const r of late.deliveredTo)
                  addReceipt(m.deliveredTo, r);
              for (const r of late.readBy)
                  addReceipt(m.readBy, r);
          }
          if (live && isUnreadFor(m, this.host.userId)) {
              this.unread += 1;
              if (this.firstUnreadId === null)
                  this.firstUnreadId = m.id;
          }
          this.emit('message', m);
      }
      /** Pages `history {after}` until nothing newer is missing (a hole before a live message, or hasMore). */
      async fill() {
          if (this.filling)
              return;
          this.filling = true;
          const gen = this.host.gen;
          let idle = 0;
          try {
              while ((this.moreAfter || this.ahead.size > 0) && gen === this.host.gen && this.joined && idle < 20) {
                  const newest = this.messages[this.messages.length - 1];
                  const data = { requestId: this.requestId };
                  if (newest)
                      data.after = newest.id;
                  else {
                      // Nothing held yet (the room was empty): page back from the oldest message received to seq 1.
                      const oldest = Math.min(...this.ahead.keys());
                      const m = this.ahead.get(oldest);
                      if (m)
                          data.before = m.id;
                  }
                  let page;
                  const before = this.lastSeq;
                  try {
                      await this.host.request('history', data, (p) => (page = p));
                  }
                  catch (e) {
                      if (isUnknownAfter(e)) {
                          this.resetMessages();
                          void this.join();
                          return;
                      }
                      if (!shouldRetry(e) || (e instanceof LabchatError && e.code === DISCONNECTED))
                          return;
                      await sleep(retryDelay(e));
                      continue;
                  }
                  if (!page)
                      return;
                  for (const m of page.messages)
                      this.accept(m, false);
                  this.moreAfter = page.hasMore && newest !== undefined;
                  if (this.lastSeq === before) {
                      idle += 1;
                      await sleep(RETRY_MS);
                  }
                  else
                      idle = 0;
              }
          }
          finally {
              this.filling = false;
          }
      }
      resetMessages() {
          this.messages.length = 0;
          this.byId.clear();
          this.ahead.clear();
          this.lastSeq = 0;
          this.known = false;
          this.emit('reset', undefined);
      }
      ensureOpen() {
          if (this.left || this.host.isFinished()) {
              throw new LabchatError(this.left ? ClientErrorCodes.LEFT : ClientErrorCodes.CLOSED, 'the room is no longer open');
          }
      }
      /** Puts `m` in the place of the held message with its id (in `messages` or waiting for a lower seq). */
      replaceHeld(m) {
          if (this.byId.has(m.id)) {
              const first = this.messages[0]?.seq ?? 0;
              let i = m.seq - first;
              if (this.messages[i]?.id !== m.id)
                  i = this.messages.findIndex((x) => x.id === m.id);
              if (i >= 0)
                  this.messages[i] = m;
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
      onChange(change) {
          const { messageId, seq } = change.data;
          const held = this.byId.get(messageId) ?? (this.ahead.get(seq)?.id === messageId ? this.ahead.get(seq) : undefined);
          if (!held) {
              // Older than the oldest held: a page loaded later shows the change. Newer: apply on arrival.
              if (seq > this.lastSeq)
                  bounded(this.lateChanges).set(messageId, [...(this.lateChanges.get(messageId) ?? []), change]);
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
      onReceipts(field, ev) {
          // Before a join's page, receipts are the replay of what changed on messages up to the newest
          // held: one not held is older than every held message, and no page will bring it.
          if (!this.joined && !ev.messages.some((id) => this.byId.has(id)))
              return;
          for (const id of ev.messages) {
              const m = this.byId.get(id);
              if (m)
                  addReceipt(m[field], ev);
              else if (!this.joined)
                  continue;
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
              if (this.unread === 0)
                  this.firstUnreadId = null;
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
  const LATE_LIMIT = 10000;
  /** `map`, with its oldest entry dropped when it is full. */
  function bounded(map) {
      if (map.size >= LATE_LIMIT) {
          const oldest = map.keys().next();
          if (!oldest.done)
              map.delete(oldest.value);
      }
      return map;
  }
  function addReceipt(list, ev) {
      if (!list.some((r) => r.userId === ev.userId))
          list.push({ userId: ev.userId, at: ev.at });
  }
  return { Room };
})();

const $token = (() => {
  // Reads a JWT's claims without verifying it (the server verifies): the client only needs `sub`
  // (whose messages are its own) and `exp` (when to refresh).
  function tokenClaims(token) {
      const part = token.split('.')[1];
      if (!part)
          return {};
      try {
          const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
          const json = decodeURIComponent(Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
          const claims = JSON.parse(json);
          const out = {};
          if (typeof claims.sub === 'string')
              out.sub = claims.sub;
          if (typeof claims.exp === 'number')
              out.exp = claims.exp;
          return out;
      }
      catch {
          return {};
      }
  }
  return { tokenClaims };
})();

const $client = (() => {
  const { backoffDelay } = $backoff;
  const { Emitter } = $emitter;
  const { ClientErrorCodes, DISCONNECTED, LabchatError } = $errors;
  const { CloseCodes } = $protocol;
  const { Room } = $room;
  const { tokenClaims } = $token;
  // The connection: one websocket at a time, authenticated with getToken(), reconnected with
  // full-jitter backoff, its token refreshed before it expires; frames matched to replies by `id`.
  const OPEN = 1;
  class Client extends Emitter {
      constructor(opts) {
          super();
          this.ws = null;
          this.nextId = 1;
          this.pending = new Map();
          this.rooms = new Map();
          this.inboxListeners = new Set();
          this.attempt = 0;
          this.authRetried = false;
          this.userClosed = false;
          this.finished = false;
          this.tokenExp = 0;
          this.openWaiters = [];
          /** The connection generation: bumped by every new socket. */
          this.gen = 0;
          /** The token's `sub`: the user this client acts as (known once a token was fetched). */
          this.userId = '';
          /** The current state. */
          this.state = { state: 'connecting', attempt: 0 };
          this.opts = opts;
          this.reconnect = {
              minDelayMs: opts.reconnect?.minDelayMs ?? 1000,
              maxDelayMs: opts.reconnect?.maxDelayMs ?? 30000,
              maxAttempts: opts.reconnect?.maxAttempts ?? Infinity,
          };
          const WS = opts.WebSocket ?? globalThis.WebSocket;
          if (!WS)
              throw new TypeError('no WebSocket: pass createClient({WebSocket}) (e.g. the `ws` package) or run where WebSocket is global');
          this.WS = WS;
          setTimeout(() => void this.connect(), 0);
      }
      get roomOptions() {
          return this.opts;
      }
      /** The room of `requestId`: joined now (and after every reconnect) until `room.leave()`. */
      room(requestId) {
          const key = requestId.toLowerCase();
          let room = this.rooms.get(key);
          if (!room) {
              room = new Room(this, key);
              this.rooms.set(key, room);
              if (this.isOpen())
                  void room.join();
          }
          return room;
      }
      /** A page of the inbox, most recent activity first; waits for the connection. */
      async inbox(opts = {}) {
          for (;;) {
              await this.whenOpen();
              try {
                  return await this.request('inbox', opts);
              }
              catch (e) {
                  if (!(e instanceof LabchatError) || e.code !== DISCONNECTED)
                      throw e;
              }
          }
      }
      /**
       * Calls `fn` with every `inboxUpdate` ('live') and, on subscribing and after each reconnect,
       * with each row of the inbox's first page ('resync'), so no change is missed. Returns the
       * function that unsubscribes.
       */
      onInbox(fn) {
          this.inboxListeners.add(fn);
          if (this.inboxListeners.size === 1 && this.isOpen())
              void this.subscribeInbox(this.gen);
          else if (this.isOpen())
              void this.resyncInbox(this.gen, fn);
          return () => {
              if (!this.inboxListeners.delete(fn) || this.inboxListeners.size > 0)
                  return;
              if (this.isOpen())
                  this.request('unsubscribeInbox', {}).catch(() => undefined);
          };
      }
      /** Closes the connection for good; pending operations are rejected with CLIENT_CLOSED. */
      close() {
          this.userClosed = true;
          this.finish(undefined);
      }
      // ------------------------------------------------------------------ RoomHost
      isOpen() {
          return this.ws !== null && this.ws.readyState === OPEN && this.state.state === 'open';
      }
      forget(room) {
          if (this.rooms.get(room.requestId) === room)
              this.rooms.delete(room.requestId);
      }
      /** Sends one frame (always with an `id`) and resolves with its `ack` data. */
      request(event, data, onHistory) {
          return new Promise((resolve, reject) => {
              const ws = this.ws;
              if (!ws || !this.isOpen()) {
                  reject(new LabchatError(DISCONNECTED, 'not connected'));
                  return;
              }
              const id = this.nextId++;
              const p = { resolve: resolve, reject };
              if (onHistory)
                  p.onHistory = onHistory;
              this.pending.set(id, p);
              try {
                  ws.send(JSON.stringify({ event, data, id }));
              }
              catch (e) {
                  this.pending.delete(id);
                  reject(new LabchatError(DISCONNECTED, `send failed: ${String(e)}`));
              }
          });
      }
      whenOpen() {
          if (this.isOpen())
              return Promise.resolve();
          if (this.finished)
              return Promise.reject(new LabchatError(ClientErrorCodes.CLOSED, 'the client is closed'));
          return new Promise((resolve) => this.openWaiters.push(resolve));
      }
      isFinished() {
          return this.finished;
      }
      // ------------------------------------------------------------------ connection
      setState(s) {
          this.state = s;
          this.emit('state', s);
      }
      async connect() {
          if (this.finished)
              return;
          this.timer = undefined;
          this.setState({ state: 'connecting', attempt: this.attempt });
          let token;
          try {
              token = await this.opts.getToken();
          }
          catch (e) {
              this.retry(this.attempt + 1, `getToken failed: ${String(e)}`);
              return;
          }
          if (this.finished)
              return;
          const claims = tokenClaims(token);
          if (claims.sub)
              this.userId = claims.sub;
          this.tokenExp = claims.exp ?? 0;
          const gen = ++this.gen;
          let ws;
          try {
              ws = new this.WS(this.opts.url, ['labchat.v1', `bearer.${token}`]);
          }
          catch (e) {
              this.retry(this.attempt + 1, `could not open the socket: ${String(e)}`);
              return;
          }
          this.ws = ws;
          let opened = false;
          let errorText = '';
          ws.onopen = () => {
              if (gen !== this.gen)
                  return;
              opened = true;
              this.attempt = 0;
              this.authRetried = false;
              this.onOpen(gen);
          };
          ws.onerror = (ev) => {
              const msg = ev?.message;
              if (typeof msg === 'string')
                  errorText = msg;
          };
          ws.onmessage = (ev) => {
              if (gen === this.gen)
                  this.onFrame(typeof ev.data === 'string' ? ev.data : String(ev.data));
          };
          ws.onclose = (ev) => {
              if (gen !== this.gen)
                  return;
              this.onClose(ev.code, ev.reason ?? '', opened, errorText);
          };
      }
      onOpen(gen) {
          this.setState({ state: 'open' });
          this.scheduleRefresh(gen);
          for (const w of this.openWaiters.splice(0))
              w();
          for (const room of this.rooms.values())
              void room.join();
          if (this.inboxListeners.size > 0)
              void this.subscribeInbox(gen);
      }
      onClose(code, reason, opened, errorText) {
          this.ws = null;
          clearTimeout(this.refreshTimer);
          const lost = new LabchatError(DISCONNECTED, `connection closed (${code}${reason ? ` ${reason}` : ''})`);
          for (const p of this.pending.values())
              p.reject(lost);
          this.pending.clear();
          for (const room of this.rooms.values())
              room.disconnected();
          if (this.finished)
              return;
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
      retry(attempt, reason, code = 0) {
          this.attempt = Math.max(attempt, 1);
          if (this.attempt > this.reconnect.maxAttempts) {
              this.fail(ClientErrorCodes.GAVE_UP, `gave up after ${this.reconnect.maxAttempts} attempts: ${reason}`);
              return;
          }
          const delayMs = attempt === 0 ? 0 : backoffDelay(this.attempt, this.reconnect);
          this.setState({ state: 'reconnecting', attempt: this.attempt, delayMs, code, reason });
          this.timer = setTimeout(() => void this.connect(), delayMs);
      }
      fail(code, message) {
          this.finish(new LabchatError(code, message));
      }
      finish(error) {
          if (this.finished)
              return;
          this.finished = true;
          clearTimeout(this.timer);
          clearTimeout(this.refreshTimer);
          const ws = this.ws;
          this.ws = null;
          if (ws) {
              try {
                  ws.close(1000, 'client closed');
              }
              catch {
                  // already closed
              }
          }
          const closed = error ?? new LabchatError(ClientErrorCodes.CLOSED, 'the client is closed');
          for (const p of this.pending.values())
              p.reject(closed);
          this.pending.clear();
          for (const room of [...this.rooms.values()])
              room.finish(closed);
          this.openWaiters = [];
          this.setState(error ? { state: 'closed', error } : { state: 'closed' });
      }
      // ------------------------------------------------------------------ token refresh
      scheduleRefresh(gen) {
          clearTimeout(this.refreshTimer);
          if (!this.tokenExp)
              return;
          const left = this.tokenExp * 1000 - Date.now();
          const margin = this.opts.refreshBeforeMs ?? Math.min(60000, Math.max(500, left / 4));
          this.refreshTimer = setTimeout(() => void this.refresh(gen), Math.max(0, left - margin));
      }
      async refresh(gen) {
          if (gen !== this.gen || !this.isOpen())
              return;
          let token;
          try {
              token = await this.opts.getToken();
          }
          catch {
              this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
              return;
          }
          const exp = tokenClaims(token).exp ?? 0;
          if (gen !== this.gen || !this.isOpen())
              return;
          if (exp <= this.tokenExp) {
              // Not a newer token: refreshing with it would not extend (or would shorten) the connection.
              this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
              return;
          }
          try {
              await this.request('refreshToken', { token });
              if (gen !== this.gen)
                  return;
              this.tokenExp = exp;
              this.scheduleRefresh(gen);
          }
          catch (e) {
              if (gen !== this.gen)
                  return;
              // UNAUTHORIZED: the current token still holds; try again shortly (or reconnect on 4001).
              if (e instanceof LabchatError && e.code !== DISCONNECTED) {
                  this.refreshTimer = setTimeout(() => void this.refresh(gen), 1000);
              }
          }
      }
      // ------------------------------------------------------------------ frames in
      onFrame(text) {
          let frame;
          try {
              frame = JSON.parse(text);
          }
          catch {
              return;
          }
          const { event, data, id } = frame;
          if (typeof id === 'number') {
              const p = this.pending.get(id);
              if (p) {
                  if (event === 'roomHistory') {
                      p.onHistory?.(data);
                      return;
                  }
                  if (event === 'ack' || event === 'error') {
                      this.pending.delete(id);
                      if (event === 'ack')
                          p.resolve(data);
                      else {
                          const err = data;
                          p.reject(new LabchatError(err.code, err.message, err));
                      }
                      return;
                  }
              }
          }
          const d = data;
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
                  for (const fn of [...this.inboxListeners])
                      fn(data, 'live');
                  return;
              case 'error': {
                  const err = data;
                  const e = new LabchatError(err.code, err.message, err);
                  if (room && err.code === 'FORBIDDEN')
                      room.removed(e);
                  this.emit('error', e);
                  return;
              }
              default:
          }
      }
      // ------------------------------------------------------------------ inbox
      async subscribeInbox(gen) {
          try {
              await this.request('subscribeInbox', {});
          }
          catch {
              return; // a reconnect subscribes again
          }
          if (gen !== this.gen)
              return;
          try {
              const page = await this.request('inbox', {});
              for (const row of page.rooms)
                  for (const fn of [...this.inboxListeners])
                      fn(row, 'resync');
          }
          catch {
              // a reconnect re-reads it
          }
      }
      async resyncInbox(gen, fn) {
          if (gen !== this.gen)
              return;
          try {
              const page = await this.request('inbox', {});
              for (const row of page.rooms)
                  fn(row, 'resync');
          }
          catch {
              // a reconnect re-reads it
          }
      }
  }
  /** Creates a client; it connects at once. */
  function createClient(opts) {
      return new Client(opts);
  }
  return { Client, createClient };
})();

const { createClient, Client } = $client;
const { Room } = $room;
const { backoffDelay, backoffWindow } = $backoff;
const { LabchatError, ClientErrorCodes, DISCONNECTED } = $errors;
const { CloseCodes } = $protocol;
export { createClient, Client, Room, backoffDelay, backoffWindow, LabchatError, ClientErrorCodes, DISCONNECTED, CloseCodes };
