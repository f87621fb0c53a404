// The client against one real labchat node (memory store): chat, receipts, unread, typing,
// members, the inbox; a connection cut while messages flow and sends are queued; catch-up pages;
// rate limits; a node restarted with an empty history.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  REQUEST_ID,
  TEACHER,
  assertSameAsStored,
  client,
  mintToken,
  seedFile,
  sleep,
  startNode,
  startProxy,
  storedHistory,
  waitFor,
  waitState,
} from './harness.mjs';

const teacherToken = () => mintToken({ sub: TEACHER, role: 'TEACHER' });
const labToken = (sub = 'lab-1') => () => mintToken({ sub, role: 'LAB' });

describe('one node', () => {
  let node;
  const clients = [];
  const open = (...a) => {
    const c = client(...a);
    clients.push(c);
    return c;
  };

  before(async () => {
    node = await startNode({ args: ['--seed-requests', seedFile(), '--history-limit', '10', '--access-recheck-interval', '0s'] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await node?.stop();
  });

  test('two users chat: each message once, in seq order, with receipts, unread and members', async () => {
    // Every frame the two clients send, as written to their sockets.
    const frames = [];
    class Recording extends WebSocket {
      send(text) {
        frames.push(JSON.parse(text));
        super.send(text);
      }
    }
    const t = open(node.url, teacherToken, { WebSocket: Recording });
    const l = open(node.url, labToken(), { WebSocket: Recording });
    const tr = t.room(REQUEST_ID);
    const lr = l.room(REQUEST_ID);
    const seen = [];
    lr.on('message', (m) => seen.push(m.seq));
    await waitState(t, 'open');
    await waitState(l, 'open');
    await waitFor(() => tr.joined && lr.joined, 'both joined');
    await waitFor(() => lr.memberList.length === 2, 'the lab user sees two members');

    const sent = [];
    for (let i = 0; i < 25; i++) sent.push(tr.send(`hello ${i}`));
    const stored = await Promise.all(sent);
    assert.deepEqual(stored.map((m) => m.message), sent.map((_, i) => `hello ${i}`));
    await waitFor(() => lr.messages.length === 25, 'the lab user holds 25 messages');
    assert.deepEqual(seen, lr.messages.map((m) => m.seq), 'message events in seq order, each once');
    assertSameAsStored(lr.messages, await storedHistory(node.url, teacherToken()), 'lab');
    assert.equal(lr.unread, 25);
    assert.equal(lr.firstUnreadId, lr.messages[0].id);
    stored.forEach((m) => assert.match(m.clientMessageId, /^[0-9a-f-]{36}$/, 'a UUID clientMessageId'));

    const reads = [];
    tr.on('read', (ev) => reads.push(...ev.messages));
    const ids = lr.messages.map((m) => m.id);
    await Promise.all([lr.markDelivered(ids.slice(0, 10)), lr.markRead(ids.slice(0, 5)), lr.markRead(ids.slice(5, 10))]);
    await waitFor(() => reads.length === 10, 'the teacher sees 10 reads');
    assert.equal(lr.unread, 15);
    assert.equal(lr.firstUnreadId, ids[10]);
    assert.ok(tr.messages[0].readBy.some((r) => r.userId === 'lab-1'));

    const typing = [];
    tr.on('typing', (ev) => typing.push(ev.userId));
    lr.typing();
    lr.typing(); // throttled by the client: one frame
    await waitFor(() => typing.length === 1, 'one typing event');
    await sleep(300);
    assert.deepEqual(typing, ['lab-1']);
    tr.leave();
    lr.leave();
    // Every frame carries a correlation id, so every error can be matched to its frame.
    const events = new Set(frames.map((f) => f.event));
    for (const e of ['joinRoom', 'message', 'ackMessages', 'readMessages', 'typing', 'leaveRoom']) assert.ok(events.has(e), e);
    const noId = frames.filter((f) => f.id === undefined);
    assert.deepEqual(noId, [], 'frames sent without an id');
  });

  test('edit and delete: both users see the new text, then the tombstone, as stored', async () => {
    const t = open(node.url, teacherToken);
    const l = open(node.url, labToken('lab-2'));
    const tr = t.room(REQUEST_ID);
    const lr = l.room(REQUEST_ID);
    await waitFor(() => tr.joined && lr.joined, 'both joined');
    const edited = [];
    const deleted = [];
    lr.on('edited', (m) => edited.push(m.id));
    lr.on('deleted', (m) => deleted.push(m.id));
    const sent = await tr.send('a typo hre');
    await waitFor(() => lr.messages.some((m) => m.id === sent.id), 'the lab user holds the message');
    const fixed = await tr.edit(sent.id, 'a typo here');
    assert.equal(fixed.message, 'a typo here');
    assert.ok(fixed.editedAt, 'editedAt');
    await waitFor(() => edited.length === 1, 'the lab user sees the edit');
    assert.equal(lr.messages.find((m) => m.id === sent.id).message, 'a typo here');
    await assert.rejects(lr.edit(sent.id, 'not mine'), (e) => e.code === 'FORBIDDEN');
    const tombstone = await lr.delete(sent.id);
    assert.equal(tombstone.message, undefined);
    assert.equal(tombstone.deletedBy, 'lab-2');
    await waitFor(() => tr.messages.find((m) => m.id === sent.id)?.deletedAt, 'the teacher sees the tombstone');
    assert.equal(tr.messages.find((m) => m.id === sent.id).message, undefined);
    assert.deepEqual(deleted, [sent.id]);
    assertSameAsStored(lr.messages, await storedHistory(node.url, teacherToken()), 'lab');
    tr.leave();
    lr.leave();
  });

  test('a cut connection: live messages missed, queued sends and marks are caught up, each once', async () => {
    const proxy = await startProxy(node.port);
    try {
      const l = open(proxy.url, labToken('lab-cut'));
      const t = open(node.url, teacherToken);
      const lr = l.room(REQUEST_ID);
      const tr = t.room(REQUEST_ID);
      const events = [];
      lr.on('message', (m) => events.push(m.id));
      await waitFor(() => lr.joined && tr.joined, 'joined');
      const states = [];
      l.on('state', (s) => states.push(s.state));

      proxy.block(true);
      proxy.cut();
      await waitState(l, 'reconnecting');
      // While cut: the teacher posts 35 (more than three pages of 10), the lab user queues 5 sends and marks.
      for (let i = 0; i < 35; i++) await tr.send(`while cut ${i}`);
      const queued = [0, 1, 2, 3, 4].map((i) => lr.send(`queued ${i}`));
      const marked = lr.markRead([tr.messages[tr.messages.length - 1].id]);
      await sleep(500);
      proxy.block(false);
      const mine = await Promise.all(queued);
      await marked;
      const stored = await storedHistory(node.url, teacherToken());
      const newest = stored[stored.length - 1].seq;
      await waitFor(() => lr.messages.at(-1)?.seq === newest && tr.messages.at(-1)?.seq === newest, () => `both caught up (${lr.messages.length}, ${tr.messages.length} of ${stored.length}; lab seqs ${lr.messages.map((m) => m.seq).join(',')})`);
      assertSameAsStored(lr.messages, stored, 'lab');
      assertSameAsStored(tr.messages, stored, 'teacher');
      assert.deepEqual(events, lr.messages.slice(lr.messages.length - events.length).map((m) => m.id), 'events once, in order');
      for (const m of mine) {
        assert.equal(stored.filter((s) => s.clientMessageId === m.clientMessageId).length, 1, 'each queued send stored once');
      }
      assert.ok(states.includes('open'));
      lr.leave();
      tr.leave();
    } finally {
      await proxy.close();
    }
  });

  test('sends faster than the rate limit all arrive once, and the connection is never closed', async () => {
    const slow = await startNode({ args: ['--seed-requests', seedFile(), '--rate-per-second', '5', '--rate-burst', '5'] });
    try {
      const c = open(slow.url, teacherToken);
      const closes = [];
      c.on('state', (s) => s.state === 'reconnecting' && closes.push(s));
      const r = c.room(REQUEST_ID);
      await waitFor(() => r.joined, 'joined');
      const stored = await Promise.all(Array.from({ length: 20 }, (_, i) => r.send(`burst ${i}`)));
      assert.equal(new Set(stored.map((m) => m.id)).size, 20);
      const history = await storedHistory(slow.url, teacherToken());
      assert.equal(history.length, 20);
      assert.deepEqual(closes, [], 'never closed for the rate');
      c.close();
    } finally {
      await slow.stop();
    }
  });

  test('a node restarted with an empty history: the room resets and takes the new messages', async () => {
    const n = await startNode({ args: ['--seed-requests', seedFile()] });
    const c = open(n.url, labToken('lab-reset'));
    const r = c.room(REQUEST_ID);
    const resets = [];
    r.on('reset', () => resets.push(1));
    await waitFor(() => r.joined, 'joined');
    await r.send('before the restart');
    await waitFor(() => r.messages.length === 1, 'one message');
    await n.kill9();
    const again = await startNode({ port: n.port, args: ['--seed-requests', seedFile()] });
    try {
      await waitFor(() => resets.length === 1 && r.joined, 'reset and joined again');
      const post = client(again.url, teacherToken);
      clients.push(post);
      await post.room(REQUEST_ID).send('after the restart');
      await waitFor(() => r.messages.length === 1 && r.messages[0].message === 'after the restart', 'the new seq 1');
      assert.equal(r.messages[0].seq, 1);
      c.close();
    } finally {
      await again.stop();
    }
  });

  test('the inbox: pages, live updates, and a re-read after a reconnect', async () => {
    const proxy = await startProxy(node.port);
    try {
      const l = open(proxy.url, labToken('lab-inbox'));
      const page = await l.inbox({ limit: 5 });
      assert.ok(page.rooms.some((row) => row.requestId === REQUEST_ID));
      const rows = [];
      l.onInbox((row, source) => rows.push({ source, unread: row.unread, last: row.lastMessage.message }));
      await waitFor(() => rows.some((r) => r.source === 'resync'), 'the first page on subscribing');
      const t = open(node.url, teacherToken);
      await t.room(REQUEST_ID).send('inbox live');
      await waitFor(() => rows.some((r) => r.source === 'live' && r.last === 'inbox live'), 'a live update');
      proxy.block(true);
      proxy.cut();
      await waitState(l, 'reconnecting');
      // Posted while the lab user is away: learnt from the re-read after the reconnect.
      await t.room(REQUEST_ID).send('inbox while away');
      proxy.block(false);
      await waitFor(() => rows.some((r) => r.source === 'resync' && r.last === 'inbox while away'), 'the re-read');
    } finally {
      await proxy.close();
    }
  });
});
