// A drain of one node under load, through HAProxy started with deploy/haproxy.cfg: three real nodes
// (test MongoDB, redis-server), 45 clients spread over them by round robin in 5 rooms, each with
// members on every node, every client posting every 2 s, fresh connections opened all along; then
// `POST /drain` on one node's operations listener (--drain-delay 3s, --drain-window 3s).
//
// Afterwards: every send stored exactly once and every client's room.messages equal to the stored
// history from seq 1 (0 lost, 0 duplicates); every client of the drained node closed with 1012 and
// open again on another node within the drain delay + window + 5 s, the others never closed; HAProxy
// marked the node down before the drain delay was over, and no connection failed: no refused or
// failed handshake on the client side, no connection error, retry, redispatch or 5xx in HAProxy's
// counters.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startCluster } from './cluster.mjs';
import { TEACHER, assertSameAsStored, client, mintToken, sleep, storedHistory, waitFor } from './harness.mjs';

const CLIENTS = 45;
const ROOMS = ['6751b6df1ad14eaa13a0b001', '6751b6df1ad14eaa13a0b002', '6751b6df1ad14eaa13a0b003', '6751b6df1ad14eaa13a0b004', '6751b6df1ad14eaa13a0b005'];
const POST_EVERY_MS = 2000;
const PROBE_EVERY_MS = 100;
const DELAY_MS = 3000;
const WINDOW_MS = 3000;
/** The node drained: node-2. */
const DRAINED = 1;

const teacher = () => mintToken({ sub: TEACHER, role: 'TEACHER' });
const user = (i) => `lab-drain-${i}`;

/** Whether `node`'s logs show a connection of `userId` opened. */
function openedOn(node, userId) {
  return node
    .logs()
    .split('\n')
    .some((l) => l.includes('"message":"connection opened"') && l.includes(`"user_id":"${userId}"`));
}

/** Opens a websocket through the load balancer and closes it: `true` if the handshake succeeded. */
function probe(url, i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['labchat.v1', `bearer.${mintToken({ sub: `lab-probe-${i}`, role: 'LAB' })}`]);
    const timer = setTimeout(() => done(false), 10_000);
    const done = (ok) => {
      clearTimeout(timer);
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve(ok);
    };
    ws.once('open', () => done(true));
    ws.once('unexpected-response', () => done(false));
    ws.once('error', () => done(false));
  });
}

describe('a drain of one node under load, behind HAProxy', () => {
  let cluster;
  const clients = [];
  /** The posters post while this holds; a failed assertion stops them too (`after`). */
  let posting = false;
  before(async () => {
    cluster = await startCluster(
      ROOMS.map((id) => ({ id, createdBy: TEACHER })),
      ['--drain-delay', `${DELAY_MS}ms`, '--drain-window', `${WINDOW_MS}ms`, '--ops-listen', '127.0.0.1:0'],
    );
  });
  after(async () => {
    posting = false;
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  test('0 lost, 0 duplicates, the drained clients back elsewhere in time, no connection refused', { timeout: 240_000 }, async () => {
    const crowd = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = client(cluster.url, () => mintToken({ sub: user(i), role: 'LAB' }));
      clients.push(c);
      const x = { i, c, room: null, prev: '', failed: [], closes: [], opens: [], events: [], sends: [] };
      c.on('state', (s) => {
        const now = Date.now();
        if (s.state === 'reconnecting') (x.prev === 'connecting' ? x.failed : x.closes).push({ at: now, code: s.code, reason: s.reason });
        if (s.state === 'open') x.opens.push(now);
        x.prev = s.state;
      });
      crowd.push(x);
    }
    // Rooms are given once every client is open and its node known: each node's clients in turn
    // over every room, so that every room has members on every node whatever order HAProxy's
    // round robin met the handshakes in.
    await waitFor(() => crowd.every((x) => x.opens.length > 0 && cluster.nodes.some((n) => openedOn(n, user(x.i)))), 'every client open', 60_000);
    const node = crowd.map((x) => cluster.nodes.findIndex((n) => openedOn(n, user(x.i))));
    const onNode = new Map();
    for (const x of crowd) {
      const k = onNode.get(node[x.i]) ?? 0;
      onNode.set(node[x.i], k + 1);
      x.room = x.c.room(ROOMS[k % ROOMS.length]);
      x.room.on('message', (m) => x.events.push(m.seq));
    }
    await waitFor(() => crowd.every((x) => x.room.joined), 'every client joined', 60_000);
    const drained = crowd.filter((x) => node[x.i] === DRAINED);
    const others = crowd.filter((x) => node[x.i] !== DRAINED);
    assert.ok(node.every((n) => n >= 0), 'every client is on a node');
    assert.ok(drained.length >= CLIENTS / 6, `round robin put clients on the drained node (${drained.length})`);
    for (const r of ROOMS) {
      const nodes = new Set(crowd.filter((x) => x.room.requestId === r).map((x) => node[x.i]));
      assert.equal(nodes.size, 3, `room ${r} has members on every node`);
    }

    // Every client posts every POST_EVERY_MS, each at its own phase: a steady flow through the drain.
    posting = true;
    const posters = crowd.map(async (x) => {
      await sleep(Math.random() * POST_EVERY_MS);
      for (let n = 0; posting; n++) {
        x.sends.push(x.room.send(`${user(x.i)} #${n}`));
        await sleep(POST_EVERY_MS);
      }
    });
    await sleep(3000);

    const m = /"message":"ops listening[^"]*","addr":"([0-9.]+:\d+)"/.exec(cluster.nodes[DRAINED].logs());
    assert.ok(m, 'the drained node logs its operations address');
    const t0 = Date.now();
    const answer = await fetch(`http://${m[1]}/drain`, { method: 'POST' });
    assert.equal(answer.status, 202, 'POST /drain accepted');

    // Fresh connections all through the drain: none may fail.
    const probes = [];
    for (let i = 0; Date.now() < t0 + DELAY_MS + WINDOW_MS + 1000; i++) {
      probes.push(probe(cluster.url, i));
      await sleep(PROBE_EVERY_MS);
    }
    const exitCode = await Promise.race([cluster.nodes[DRAINED].exited, sleep(30_000).then(() => 'still running')]);
    assert.equal(exitCode, 0, 'the drained node exits 0');
    const exitedAfter = Date.now() - t0;

    const deadline = DELAY_MS + WINDOW_MS + 5000;
    await waitFor(
      () => drained.every((x) => x.closes.length > 0 && x.opens.some((t) => t > x.closes[0].at) && x.room.joined),
      () => `every drained client open and joined again (${drained.filter((x) => x.opens.length > 1).length}/${drained.length})`,
      deadline + 10_000,
    );
    await sleep(2000);
    posting = false;
    await Promise.all(posters);
    const stored = (await Promise.all(crowd.map((x) => Promise.all(x.sends)))).flat();
    const probed = await Promise.all(probes);

    const backAfter = drained.map((x) => x.opens.find((t) => t > x.closes[0].at) - t0).sort((a, b) => a - b);
    const down = cluster.haproxyLines().find((l) => l.line.includes(`labchat_nodes/node${DRAINED + 1} is DOWN`));
    const stats = await cluster.lbStats();
    console.log(
      `${CLIENTS} clients, ${drained.length} on the drained node; ${stored.length} messages sent; ` +
        `HAProxy marked it down ${down ? down.at - t0 : '(never)'} ms after POST /drain, it exited after ${exitedAfter} ms; ` +
        `its clients open again ${backAfter[0]}..${backAfter.at(-1)} ms after POST /drain; ${probed.length} probes`,
    );

    // The load balancer took the node out during the drain delay, and no connection failed.
    assert.ok(down, `HAProxy marked node${DRAINED + 1} down:\n${cluster.haproxyLogs()}`);
    assert.ok(down.at - t0 < DELAY_MS, `HAProxy marked the node down ${down.at - t0} ms after the drain began, within the drain delay (${DELAY_MS} ms)`);
    assert.deepEqual(
      crowd.flatMap((x) => x.failed.map((f) => `${user(x.i)}: ${f.code} ${f.reason}`)),
      [],
      'no client handshake failed',
    );
    assert.equal(probed.filter((ok) => !ok).length, 0, `every one of the ${probed.length} fresh connections succeeded`);
    const rows = ['labchat/FRONTEND', 'labchat_nodes/node1', 'labchat_nodes/node2', 'labchat_nodes/node3', 'labchat_nodes/BACKEND'];
    for (const key of rows) assert.ok(stats[key], `HAProxy counters of ${key}: ${Object.keys(stats)}`);
    assert.ok(stats[`labchat_nodes/node${DRAINED + 1}`].stot >= drained.length, 'the drained node took its connections through HAProxy');
    for (const key of rows) {
      for (const c of ['econ', 'eresp', 'wretr', 'wredis', 'hrsp_5xx']) {
        if (typeof stats[key][c] === 'number') assert.equal(stats[key][c], 0, `HAProxy ${key} ${c}`);
      }
    }

    // The drained node's clients were closed with 1012 and came back on another node in time; the others never closed.
    for (const x of drained) {
      assert.equal(x.closes[0].code, 1012, `${user(x.i)} closed with 1012`);
      assert.equal(x.closes.length, 1, `${user(x.i)} closed once`);
      const back = x.opens.find((t) => t > x.closes[0].at) - t0;
      assert.ok(back <= deadline, `${user(x.i)} open again ${back} ms after the drain began (at most ${deadline})`);
      assert.ok(
        cluster.nodes.some((n, i) => i !== DRAINED && openedOn(n, user(x.i))),
        `${user(x.i)} reconnected to another node`,
      );
    }
    for (const x of others) assert.deepEqual(x.closes, [], `${user(x.i)} (on node-${node[x.i] + 1}) was never closed`);

    // 0 messages lost, 0 duplicates: every send stored once, every client holds the whole history once, in order.
    for (const r of ROOMS) {
      const members = crowd.filter((x) => x.room.requestId === r);
      const sent = stored.filter((s) => s.requestId === r);
      const history = await storedHistory(cluster.url, teacher(), r);
      assert.equal(history.length, sent.length, `room ${r}: each of the ${sent.length} sends stored exactly once`);
      const ids = new Set(history.map((h) => h.clientMessageId));
      assert.equal(ids.size, history.length, `room ${r}: no clientMessageId stored twice`);
      for (const s of sent) assert.ok(ids.has(s.clientMessageId), `room ${r}: ${s.message} stored`);
      const newest = history.at(-1).seq;
      await waitFor(
        () => members.every((x) => x.room.messages.at(-1)?.seq === newest),
        () => `room ${r}: every member caught up to ${newest}: ${members.map((x) => x.room.messages.at(-1)?.seq)}`,
      );
      for (const x of members) {
        assert.equal(x.room.messages[0].seq, 1, `${user(x.i)} holds the room from its first message`);
        assertSameAsStored(x.room.messages, history, user(x.i));
        assert.deepEqual(x.events, x.room.messages.map((mm) => mm.seq), `${user(x.i)}: message events once, in seq order`);
      }
    }
  });
});
