// Three real nodes (test MongoDB, redis-server) behind HAProxy: while one client posts 200
// messages at 20/s and another sends 20 itself, a fault strikes (the second client's node killed
// with -9, Redis killed and restarted, MongoDB paused for 3 s). Afterwards every client's
// room.messages equals the stored history, and every send is stored exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster } from './cluster.mjs';
import { TEACHER, assertSameAsStored, client, mintToken, sleep, storedHistory, waitFor } from './harness.mjs';

const ROOMS = { kill: '6751b6df1ad14eaa13a0a001', redis: '6751b6df1ad14eaa13a0a002', mongo: '6751b6df1ad14eaa13a0a003' };
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
});
