// Tokens against one real labchat node: a short token refreshed on the open socket (no reconnect,
// no frame lost), a refused token ending the client with a clear error and no reconnect loop, a
// failing getToken retried with backoff until maxAttempts, a token for another user closing with
// 4003.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  REQUEST_ID,
  TEACHER,
  assertSameAsStored,
  client,
  mintToken,
  seedFile,
  sleep,
  startNode,
  storedHistory,
  waitFor,
  waitState,
} from './harness.mjs';

describe('tokens', () => {
  let node;
  const clients = [];
  before(async () => {
    node = await startNode({ args: ['--seed-requests', seedFile()] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await node?.stop();
  });

  test('a token expiring during the session is refreshed on the open socket, without losing a frame', async () => {
    let minted = 0;
    const l = client(node.url, () => {
      minted += 1;
      return mintToken({ sub: 'lab-short', role: 'LAB', ttlSec: 3 });
    });
    clients.push(l);
    const t = client(node.url, () => mintToken({ sub: TEACHER, role: 'TEACHER' }));
    clients.push(t);
    const states = [];
    l.on('state', (s) => states.push(s.state));
    const lr = l.room(REQUEST_ID);
    const tr = t.room(REQUEST_ID);
    const seen = [];
    lr.on('message', (m) => seen.push(m.seq));
    await waitFor(() => lr.joined && tr.joined, 'joined');
    // 8 s of traffic both ways across at least two expiries of a 3 s token.
    const deadline = Date.now() + 8000;
    let i = 0;
    while (Date.now() < deadline) {
      await Promise.all([tr.send(`teacher ${i}`), lr.send(`lab ${i}`)]);
      i += 1;
      await sleep(100);
    }
    const stored = await storedHistory(node.url, mintToken({ sub: TEACHER, role: 'TEACHER' }));
    await waitFor(() => lr.messages.at(-1)?.seq === stored.at(-1).seq, 'caught up');
    assertSameAsStored(lr.messages, stored, 'lab');
    assert.deepEqual(seen, lr.messages.map((m) => m.seq), 'every message event, once, in order');
    assert.ok(minted >= 3, `getToken was called for the refreshes (${minted} times)`);
    assert.deepEqual(states, ['connecting', 'open'], 'the socket stayed open: no reconnect');
  });

  test('a token the server refuses ends the client with a clear error, not a reconnect loop', async () => {
    let calls = 0;
    const c = client(node.url, () => {
      calls += 1;
      return mintToken({ sub: 'lab-x', role: 'LAB', secret: 'not-the-server-secret-at-all' });
    });
    clients.push(c);
    const sendFailed = c.room(REQUEST_ID).send('never sent').catch((e) => e);
    const closed = await waitState(c, 'closed');
    assert.equal(closed.error?.code, 'AUTH_REFUSED');
    assert.match(closed.error.message, /refused the token \(HTTP 401\)/);
    assert.equal((await sendFailed).code, 'AUTH_REFUSED');
    await sleep(1500);
    assert.equal(calls, 2, 'one fresh token was tried, then no more');
  });

  test('a getToken that fails is retried with backoff, attempt after attempt, and given up after maxAttempts', async () => {
    let calls = 0;
    const c = client(
      node.url,
      async () => {
        calls += 1;
        throw new Error('the token service is down');
      },
      { reconnect: { minDelayMs: 50, maxDelayMs: 200, maxAttempts: 4 } },
    );
    clients.push(c);
    const retries = [];
    c.on('state', (s) => {
      if (s.state === 'reconnecting') retries.push(s.attempt);
    });
    const closed = await waitState(c, 'closed', 10_000);
    assert.equal(closed.error?.code, 'GAVE_UP');
    assert.match(closed.error.message, /getToken failed: Error: the token service is down/);
    assert.deepEqual(retries, [1, 2, 3, 4], 'each retry is one attempt further (a growing backoff window)');
    assert.equal(calls, 5, 'the first try and four retries, then no more');
    await sleep(500);
    assert.equal(calls, 5);
  });

  test('refreshing with a token for another user closes with 4003 and ends the client', async () => {
    let n = 0;
    const c = client(
      node.url,
      () => {
        n += 1;
        return n === 1 ? mintToken({ sub: 'lab-a', role: 'LAB', ttlSec: 2 }) : mintToken({ sub: 'lab-b', role: 'LAB', ttlSec: 60 });
      },
    );
    clients.push(c);
    const closed = await waitState(c, 'closed', 10_000);
    assert.equal(closed.error?.code, 'AUTH_REFUSED');
    assert.match(closed.error.message, /4003/);
  });
});
