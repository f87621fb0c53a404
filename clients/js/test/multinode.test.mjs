// Three real nodes (test MongoDB, redis-server) behind HAProxy: while one client posts 200
// messages at 20/s and another sends 20 itself, a fault strikes (the second client's node killed
// with -9, Redis killed and restarted, MongoDB paused for 3 s). Afterwards every client's
// room.messages equals the stored history, and every send is stored exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster } from './cluster.mjs';
import { TEACHER, assertSameAsStored, client, mintToken, sleep, storedHistory, waitFor } from './harness.mjs';

const CROWD = 500;
const WINDOW_MS = 3000;

const ROOMS = { kill: '6751b6df1ad14eaa13a0a001', redis: '6751b6df1ad14eaa13a0a002', mongo: '6751b6df1ad14eaa13a0a003', crowd: '6751b6df1ad14eaa13a0a004' };
const teacher = () => mintToken({ sub: TEACHER, role: 'TEACHER' });

describe('three nodes behind HAProxy', () => {
  let cluster;
  const clients = [];
  before(async () => {
    cluster = await startCluster(Object.values(ROOMS).map((id) => ({ id, createdBy: TEACHER })));
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  async function scenario(name, requestId, fault) {
    const victimId = `lab-victim-${name}`;
    const poster = client(cluster.url, teacher);
    const victim = client(cluster.url, () => mintToken({ sub: victimId, role: 'LAB' }));
    const watcher = client(cluster.url, () => mintToken({ sub: `lab-watch-${name}`, role: 'LAB' }));
    clients.push(poster, victim, watcher);
    const victimStates = [];
    victim.on('state', (s) => victimStates.push(s.state));
    const rooms = [poster, victim, watcher].map((c) => c.room(requestId));
    const events = rooms.map(() => []);
    rooms.forEach((r, i) => r.on('message', (m) => events[i].push(m.seq)));
    await waitFor(() => rooms.every((r) => r.joined), 'every client joined');

    const posts = [];
    const mine = [];
    const posting = (async () => {
      for (let i = 0; i < 200; i++) {
        posts.push(rooms[0].send(`post ${i}`));
        await sleep(50);
      }
    })();
    const sending = (async () => {
      for (let i = 0; i < 20; i++) {
        mine.push(rooms[1].send(`mine ${i}`));
        await sleep(500);
      }
    })();
    await sleep(3000);
    await fault(victimId);
    await Promise.all([posting, sending]);
    const stored = [...(await Promise.all(posts)), ...(await Promise.all(mine))];
    const history = await storedHistory(cluster.url, teacher(), requestId);
    assert.equal(history.length, 220, 'each of the 220 sends stored exactly once');
    for (const m of stored) {
      assert.equal(history.filter((h) => h.clientMessageId === m.clientMessageId).length, 1, `${m.message} stored once`);
    }
    const newest = history.at(-1).seq;
    await waitFor(() => rooms.every((r) => r.messages.at(-1)?.seq === newest), () => `every client caught up to ${newest}: ${rooms.map((r) => r.messages.at(-1)?.seq)}`, 60_000);
    rooms.forEach((r, i) => {
      assertSameAsStored(r.messages, history, ['poster', 'victim', 'watcher'][i]);
      assert.equal(r.messages[0].seq, 1);
      assert.deepEqual(events[i], r.messages.map((m) => m.seq), 'message events once, in seq order');
    });
    for (const c of [poster, victim, watcher]) c.close();
    return victimStates;
  }

  test('kill -9 of the node a client is connected to', async () => {
    const states = await scenario('kill', ROOMS.kill, async (victimId) => {
      const i = cluster.nodeOf(victimId);
      assert.ok(i >= 0, 'the victim is on a node');
      await cluster.nodes[i].kill9();
      await sleep(2000);
      await cluster.restart(i);
    });
    assert.ok(states.includes('reconnecting'), 'the victim lost its node and reconnected');
  });

  test('Redis killed and restarted', async () => {
    await scenario('redis', ROOMS.redis, async () => {
      await cluster.killRedis();
      await sleep(2000);
      cluster.restartRedis();
    });
  });

  test('MongoDB paused for 3 s', async () => {
    await scenario('mongo', ROOMS.mongo, async () => {
      cluster.pauseMongo(true);
      await sleep(3000);
      cluster.pauseMongo(false);
    });
  });

  test(`${CROWD} clients whose node is killed reconnect spread over the backoff window and all catch up`, async () => {
    const crowd = [];
    for (let i = 0; i < CROWD; i++) {
      const c = client(cluster.url, () => mintToken({ sub: `lab-crowd-${i % 5}`, role: 'LAB' }), {
        reconnect: { minDelayMs: WINDOW_MS, maxDelayMs: 4 * WINDOW_MS },
      });
      clients.push(c);
      crowd.push({ c, room: c.room(ROOMS.crowd), lostAt: 0, firstAttemptAt: 0, openAt: 0 });
      if (i % 50 === 49) await sleep(200);
    }
    await waitFor(() => crowd.every((x) => x.room.joined), 'the crowd joined', 60_000);
    const poster = client(cluster.url, teacher);
    clients.push(poster);
    const room = poster.room(ROOMS.crowd);
    await room.send('before the kill');

    const victimNode = cluster.nodeOf('lab-crowd-0');
    for (const x of crowd) {
      x.c.on('state', (s) => {
        const now = Date.now();
        if (s.state === 'reconnecting' && !x.lostAt) x.lostAt = now;
        if (s.state === 'connecting' && x.lostAt && !x.firstAttemptAt) x.firstAttemptAt = now;
        if (s.state === 'open' && x.lostAt && !x.openAt) x.openAt = now;
      });
    }
    await cluster.nodes[victimNode].kill9();
    for (let i = 0; i < 20; i++) {
      await room.send(`during the storm ${i}`);
      await sleep(100);
    }
    const lost = crowd.filter((x) => x.lostAt);
    assert.ok(lost.length >= CROWD / 5, `a third of the crowd was on the killed node (${lost.length})`);
    await waitFor(() => lost.every((x) => x.openAt), () => `every lost client reconnected (${lost.filter((x) => x.openAt).length}/${lost.length})`, 60_000);
    const delays = lost.map((x) => x.firstAttemptAt - x.lostAt).sort((a, b) => a - b);
    const opens = lost.map((x) => x.openAt - x.lostAt).sort((a, b) => a - b);
    const pct = (a, p) => a[Math.min(a.length - 1, Math.floor((a.length * p) / 100))];
    console.log(
      `${lost.length} clients lost their node; first reconnect attempt after (ms): min ${delays[0]}, p10 ${pct(delays, 10)}, ` +
        `p50 ${pct(delays, 50)}, p90 ${pct(delays, 90)}, max ${delays.at(-1)} (window ${WINDOW_MS}); ` +
        `open again after: p50 ${pct(opens, 50)}, max ${opens.at(-1)}`,
    );
    assert.ok(pct(delays, 90) - pct(delays, 10) >= 0.6 * WINDOW_MS, 'the first attempts cover most of the window');
    assert.ok(delays.at(-1) <= WINDOW_MS + 200, 'no first attempt later than the window');
    const history = await storedHistory(cluster.url, teacher(), ROOMS.crowd);
    const newest = history.at(-1).seq;
    await waitFor(() => crowd.every((x) => x.room.messages.at(-1)?.seq === newest), 'the whole crowd caught up', 60_000);
    for (const x of crowd) assertSameAsStored(x.room.messages, history, 'a crowd client');
    for (const x of crowd) x.c.close();
  });
});
