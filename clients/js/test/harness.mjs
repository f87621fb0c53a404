// What the client's tests share: real labchat processes, real HS256 JWTs, a real TCP proxy that
// can cut every connection, a raw websocket reader of a room's whole stored history.
//
// Environment: LABCHAT_BIN, the labchat binary (default: the workspace's target/debug/labchat).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createClient } from '../dist/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../../..');
export const BIN =
  process.env.LABCHAT_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug', 'labchat');
export const SECRET = 'client-tests-secret-0123456789';
export const REQUEST_ID = '6751b6df1ad14eaa13a03313';
export const TEACHER = 'teacher-7';
/** The longest any single wait may take. */
export const STEP_MS = 20_000;

/** A JWT signed with `secret` (HS256). */
export function mintToken({ sub, role, ttlSec = 3600, secret = SECRET }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, role, iat: now, exp: now + ttlSec });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** A free TCP port of 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The seeded-requests file of the memory store: one request, created by TEACHER. */
export function seedFile() {
  const file = path.join(os.tmpdir(), `labchat-client-seed-${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify([{ id: REQUEST_ID, createdBy: TEACHER }]));
  return file;
}

/**
 * Starts `labchat serve` (the binary `bin`, by default the one built here) on `port` (0: any)
 * with `args`, and waits until it listens:
 * `{proc, port, url, logs(), kill9(), stop()}`.
 */
export async function startNode({ port = 0, args = [], env = {}, bin = BIN } = {}) {
  assert.ok(fs.existsSync(bin), `no labchat binary at ${bin}: cargo build -p labchat`);
  const proc = spawn(
    bin,
    ['serve', '--listen', `127.0.0.1:${port}`, '--jwt-secret', SECRET, '--log-format', 'json', '--log', 'info', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } },
  );
  let logs = '';
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`labchat did not listen within ${STEP_MS} ms:\n${logs}`)), STEP_MS);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`labchat exited with ${code}:\n${logs}`));
    });
    proc.stderr.on('data', (b) => {
      logs += b;
      const m = /"message":"labchat listening","addr":"([0-9.]+:\d+)"/.exec(logs);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  proc.removeAllListeners('exit');
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const node = {
    proc,
    port: Number(addr.split(':')[1]),
    url: `ws://${addr}/`,
    logs: () => logs,
    exited,
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STEP_MS);
      await exited;
      clearTimeout(timer);
    },
  };
  return node;
}

/** A TCP proxy to `target` port: `cut()` closes every connection (abruptly), `block(on)` refuses new ones. */
export async function startProxy(targetPort) {
  const sockets = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}/`,
    cut() {
      for (const s of sockets) s.destroy();
    },
    block(on) {
      blocked = on;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A client with the `ws` package, a fixed token maker and a short backoff. */
export function client(url, getToken, extra = {}) {
  return createClient({ url, getToken, WebSocket, reconnect: { minDelayMs: 200, maxDelayMs: 2000 }, ...extra });
}

/** Resolves once `pred()` holds; fails after `ms` with `what`. */
export async function waitFor(pred, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(25);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the client's state once it is `state`. */
export function waitState(c, state, ms = STEP_MS) {
  if (c.state.state === state) return Promise.resolve(c.state);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`client not ${state} after ${ms} ms (is ${JSON.stringify(c.state)})`)), ms);
    const off = c.on('state', (s) => {
      if (s.state === state) {
        clearTimeout(timer);
        off();
        resolve(s);
      }
    });
  });
}

/**
 * The room's whole stored history, oldest first, read over a raw websocket: the latest page, then
 * `history {before}` while `hasMore`.
 */
export async function storedHistory(url, token, requestId = REQUEST_ID) {
  const ws = new WebSocket(url, ['labchat.v1', `bearer.${token}`]);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let nextId = 1;
  const ask = (data) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      let page;
      const onMessage = (raw) => {
        const f = JSON.parse(String(raw));
        if (f.id !== id) return;
        if (f.event === 'roomHistory') page = f.data;
        else {
          ws.off('message', onMessage);
          if (f.event === 'ack') resolve(page);
          else reject(new Error(JSON.stringify(f.data)));
        }
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ event: 'history', data: { requestId, ...data }, id }));
    });
  try {
    let page = await ask({});
    const all = [...page.messages];
    while (page.hasMore && all.length > 0) {
      page = await ask({ before: all[0].id });
      all.unshift(...page.messages);
    }
    return all;
  } finally {
    ws.close();
  }
}

/**
 * Asserts that `messages` are exactly the stored history from the first of them on (same ids, same
 * order, no hole, no duplicate), and that the stored history is numbered 1, 2, 3, … with no hole.
 */
export function assertSameAsStored(messages, stored, who) {
  stored.forEach((m, i) => assert.equal(m.seq, i + 1, `stored history has a hole at ${i + 1}`));
  stored = stored.slice((messages[0]?.seq ?? stored.length + 1) - 1);
  assert.deepEqual(
    messages.map((m) => `${m.seq}:${m.id}`),
    stored.map((m) => `${m.seq}:${m.id}`),
    `${who}: room.messages differs from the stored history`,
  );
}
