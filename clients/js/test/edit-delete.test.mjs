// Editing and deleting messages with the client against one real labchat node (memory store):
// the acks, `room.messages` changed in place on every member's client, the `edited` / `deleted`
// events, the unread count, and the server's refusals passed on as rejections.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LabchatError } from '../dist/index.js';
import { REQUEST_ID, TEACHER, assertSameAsStored, client, mintToken, seedFile, sleep, startNode, startProxy, storedHistory, waitFor, waitState } from './harness.mjs';

const teacherToken = () => mintToken({ sub: TEACHER, role: 'TEACHER' });
const labToken = () => mintToken({ sub: 'lab-1', role: 'LAB' });

/** The server's error code of a rejected promise. */
async function refused(p) {
  const e = await p.then(
    () => assert.fail('expected a refusal'),
    (err) => err,
  );
  assert.ok(e instanceof LabchatError, String(e));
  return e.code;
}

describe('edit and delete', () => {
  let node;
  const clients = [];
  const open = (...a) => {
    const c = client(...a);
    clients.push(c);
    return c;
  };

  before(async () => {
    node = await startNode({ args: ['--seed-requests', seedFile(), '--access-recheck-interval', '0s', '--edit-window', '3s'] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await node?.stop();
  });

  test('edits and deletes reach every member in place; refusals reject; the window closes', async () => {
    const t = open(node.url, teacherToken);
    const l = open(node.url, labToken);
    const tr = t.room(REQUEST_ID);
    const lr = l.room(REQUEST_ID);
    const edited = [];
    const deleted = [];
    lr.on('edited', (m) => edited.push(m));
    lr.on('deleted', (m) => deleted.push(m));
    const teacherDeleted = [];
    tr.on('deleted', (m) => teacherDeleted.push(m));
    await waitState(t, 'open');
    await waitState(l, 'open');
    await waitFor(() => tr.joined && lr.joined, 'both joined');

    const [a, b, c] = await Promise.all([tr.send('one'), tr.send('two'), tr.send('three')]);
    await waitFor(() => lr.messages.length === 3, 'the lab user holds 3 messages');
    assert.equal(lr.unread, 3);

    // The sender edits: the ack is the stored message; the other member's copy changes in place.
    const e = await tr.edit(a.id, 'one, fixed');
    assert.equal(e.id, a.id);
    assert.equal(e.seq, a.seq);
    assert.equal(e.message, 'one, fixed');
    assert.match(e.editedAt, /^\d{4}-\d\d-\d\dT/);
    await waitFor(() => edited.length === 1, 'the lab user is told of the edit');
    assert.equal(edited[0].message, 'one, fixed');
    assert.equal(lr.messages[0].message, 'one, fixed');
    assert.equal(lr.messages[0].editedAt, e.editedAt);
    assert.equal(tr.messages[0].message, 'one, fixed');
    assert.equal(lr.unread, 3, 'an edit does not change the unread count');

    // The sender deletes an unread message: a tombstone, and one less unread for the lab user.
    const d = await tr.delete(b.id);
    assert.equal(d.message, undefined);
    assert.equal(d.deletedBy, TEACHER);
    assert.equal(d.seq, b.seq);
    await waitFor(() => deleted.length === 1, 'the lab user is told of the delete');
    assert.equal(lr.messages[1].id, b.id);
    assert.ok(!('message' in lr.messages[1]), 'the text is gone from the held message');
    assert.equal(lr.messages[1].deletedAt, d.deletedAt);
    assert.equal(lr.unread, 2);

    // A LAB user may delete anyone's message; the teacher's client sees it.
    const d2 = await lr.delete(c.id);
    assert.equal(d2.deletedBy, 'lab-1');
    await waitFor(() => teacherDeleted.length === 2, 'the teacher is told of both deletes');
    assert.equal(tr.messages[2].deletedBy, 'lab-1');
    assert.equal(lr.unread, 1);
    assert.deepEqual(lr.messages.map((m) => m.seq), [1, 2, 3], 'the order is kept');

    // Deleting a tombstone again is no error and tells nobody again.
    const again = await tr.delete(b.id);
    assert.equal(again.deletedAt, d.deletedAt);

    // Refusals.
    const mine = await lr.send('from the lab');
    await waitFor(() => tr.messages.length === 4, 'the teacher holds the lab message');
    assert.equal(await refused(lr.edit(a.id, 'not mine')), 'FORBIDDEN');
    assert.equal(await refused(tr.delete(mine.id)), 'FORBIDDEN');
    assert.equal(await refused(tr.edit(b.id, 'revive')), 'BAD_REQUEST');
    assert.equal(await refused(tr.edit('ffffffffffffffffffffffff', 'unknown')), 'BAD_REQUEST');
    assert.equal(await refused(tr.edit(a.id, '   ')), 'BAD_REQUEST');

    await sleep(300);
    assert.equal(deleted.length, 2, 'no second messageDeleted for the repeated delete');
    assert.equal(teacherDeleted.length, 2);
    assert.equal(lr.messages[0].message, 'one, fixed', 'refused edits changed nothing');

    // A message edited, then deleted: the tombstone keeps no editedAt, as the store's.
    await tr.delete(a.id);
    await waitFor(() => deleted.length === 3, 'the lab user is told of the third delete');
    assert.ok(!('editedAt' in lr.messages[0]), 'the tombstone of an edited message has no editedAt');
    assert.ok(!('editedAt' in tr.messages[0]));

    // Both clients hold what the store holds.
    const stored = await storedHistory(node.url, teacherToken());
    assertSameAsStored(lr.messages, stored, 'lab');
    assert.deepEqual(
      lr.messages.map((m) => [m.message, m.editedAt, m.deletedAt, m.deletedBy]),
      stored.map((m) => [m.message, m.editedAt, m.deletedAt, m.deletedBy]),
    );

    // Past the edit window (3 s here) the sender may no longer edit.
    await sleep(3200);
    assert.equal(await refused(lr.edit(mine.id, 'too late')), 'FORBIDDEN');
  });
  test('a client that was away gets the edits, deletes and receipts it missed on the messages it holds', async () => {
    const proxy = await startProxy(node.port);
    try {
      const away = open(proxy.url, teacherToken);
      const other = open(node.url, teacherToken);
      const l = open(node.url, labToken);
      const ar = away.room(REQUEST_ID);
      const or = other.room(REQUEST_ID);
      const lr = l.room(REQUEST_ID);
      await waitFor(() => ar.joined && or.joined && lr.joined, 'all joined');
      const [a, b] = await Promise.all([or.send('before: a'), or.send('before: b')]);
      const c = await lr.send('before: c');
      await waitFor(() => ar.messages.some((m) => m.id === c.id), 'the teacher who leaves holds c');
      // The room also holds the first test's messages: one more unread than before c.
      const unreadBefore = ar.unread;
      assert.ok(unreadBefore >= 1 && ar.messages.some((m) => m.id === ar.firstUnreadId));
      const reads = [];
      ar.on('read', (ev) => reads.push(ev));

      // Away: the connection is cut and new ones refused while the room changes.
      proxy.block(true);
      proxy.cut();
      await waitFor(() => !ar.joined, 'the teacher is away');
      await lr.markRead([a.id, b.id]);
      await or.markRead([c.id]);
      await or.edit(a.id, 'before: a, fixed');
      await lr.delete(b.id);

      // Back: the replay, then the page, then the join's ack ('joined').
      const back = new Promise((resolve) => {
        const off = ar.on('joined', () => {
          off();
          resolve();
        });
      });
      proxy.block(false);
      await back;
      const stored = await storedHistory(node.url, teacherToken());
      await waitFor(
        () => ar.messages.find((m) => m.id === b.id)?.deletedAt !== undefined,
        'the deletion is replayed',
      );
      assertSameAsStored(ar.messages, stored, 'the teacher who was away');
      assert.deepEqual(ar.messages, stored.slice(stored.length - ar.messages.length), 'texts, tombstones and receipts as stored');
      assert.equal(ar.unread, unreadBefore - 1, 'c was read on the other device while away');
      assert.notEqual(ar.firstUnreadId, c.id);
      assert.ok(reads.some((ev) => ev.userId === 'lab-1' && ev.messages.includes(a.id)), 'a read event for the replayed receipt');
    } finally {
      await proxy.close();
    }
  });
});
