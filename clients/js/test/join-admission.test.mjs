// A node that runs one join at a time (--max-joins-in-flight 1), with the test MongoDB paused: of
// two joins at once, one waits in the store and the other is refused with a retryable
// UNAVAILABLE carrying retryAfterMs. The client sends that joinRoom again no sooner than
// retryAfterMs later, and once MongoDB answers again both clients are in the room with its history.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startCluster } from './cluster.mjs';
import { TEACHER, client, mintToken, waitFor, waitState } from './harness.mjs';

const ROOM = '6751b6df1ad14eaa13a0b001';

/** A `ws` WebSocket that records every frame it receives and sends, with the time. */
function recording(log) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      // Registered before the client's own handler: a frame is logged before the client acts on it.
      this.on('message', (raw) => log.push({ at: Date.now(), dir: 'in', frame: JSON.parse(String(raw)) }));
    }
    send(data, ...rest) {
      log.push({ at: Date.now(), dir: 'out', frame: JSON.parse(String(data)) });
      return super.send(data, ...rest);
    }
  };
}

describe('a node at its bound of joins in progress', () => {
  let cluster;
  const clients = [];
  before(async () => {
    cluster = await startCluster([{ id: ROOM, createdBy: TEACHER }], ['--max-joins-in-flight', '1']);
  });
  after(async () => {
    cluster?.pauseMongo(false);
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  test('a join refused with retryAfterMs is sent again after that wait, and gets the room', async () => {
    const url = cluster.nodes[0].url;
    const poster = client(url, () => mintToken({ sub: TEACHER, role: 'TEACHER' }));
    clients.push(poster);
    await poster.room(ROOM).send('before the storm');

    const logs = [[], []];
    const labs = logs.map((log, i) =>
      client(url, () => mintToken({ sub: `lab-admit-${i}`, role: 'LAB' }), { WebSocket: recording(log) }),
    );
    clients.push(...labs);
    await Promise.all(labs.map((c) => waitState(c, 'open')));

    const refusal = (log) => log.find((e) => e.dir === 'in' && e.frame.event === 'error');
    cluster.pauseMongo(true);
    const rooms = labs.map((c) => c.room(ROOM));
    try {
      await waitFor(() => logs.some(refusal), 'a join refused while the other waits in the store');
    } finally {
      cluster.pauseMongo(false);
    }
    await waitFor(() => rooms.every((r) => r.joined), 'both clients joined');

    const refused = logs.filter(refusal);
    assert.equal(refused.length, 1, 'one join held the only slot, the other was refused');
    const log = refused[0];
    const error = refusal(log);
    assert.equal(error.frame.data.code, 'UNAVAILABLE');
    assert.equal(error.frame.data.event, 'joinRoom');
    assert.equal(error.frame.data.retryable, true);
    const wait = error.frame.data.retryAfterMs;
    assert.ok(Number.isInteger(wait) && wait >= 1, `retryAfterMs ${wait}`);
    const joins = log.filter((e) => e.dir === 'out' && e.frame.event === 'joinRoom');
    assert.equal(joins.length, 2, 'the refused join was sent again once');
    assert.equal(joins[0].frame.id, error.frame.id, 'the refusal answers the first join');
    // Timers fire on whole milliseconds: allow one of rounding.
    assert.ok(joins[1].at - error.at >= wait - 1, `sent again ${joins[1].at - error.at} ms after the refusal, told ${wait}`);
    for (const r of rooms) assert.deepEqual(r.messages.map((m) => m.message), ['before the storm']);
  });
});
