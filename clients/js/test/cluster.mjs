// Three real labchat nodes sharing the test MongoDB and a real redis-server, behind a real HAProxy
// started with deploy/haproxy.cfg (round robin, no sticky sessions). Everything started here is
// stopped by `stop()`; the test servers are stopped only when this run started them.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, STEP_MS, freePort, sleep, startNode } from './harness.mjs';

const MONGO = path.join(ROOT, 'scripts/mongo-test-server.sh');
const REDIS = path.join(ROOT, 'scripts/redis-test-server.sh');
const STATE = path.join(ROOT, '.ci-state');

function script(file, cmd) {
  return execFileSync('bash', [file, cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

function running(file) {
  try {
    script(file, 'uri');
    return true;
  } catch {
    return false;
  }
}

function pidOf(name) {
  return Number(fs.readFileSync(path.join(STATE, `${name}.pid`), 'utf8').trim());
}

/** Inserts requests `{_id: ObjectId(id), createdBy}` into `db`'s `requests` collection (pymongo of the test server's venv). */
function insertRequests(uri, db, requests) {
  const py = path.join(ROOT, '.venv/bin/python');
  const code = `import json, sys
from bson import ObjectId
from pymongo import MongoClient
c = MongoClient(sys.argv[1])
c[sys.argv[2]].requests.insert_many([{"_id": ObjectId(r["id"]), "createdBy": r["createdBy"]} for r in json.loads(sys.argv[3])])`;
  execFileSync(py, ['-c', code, uri, db, JSON.stringify(requests)], { stdio: 'inherit' });
}

async function waitPort(port) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await sleep(50);
  }
}

/**
 * HAProxy's own counters (`show stat` on its stats socket): one row per frontend, backend and
 * server, keyed `proxy/name` (e.g. `labchat_nodes/node2`, `labchat/FRONTEND`), numbers as numbers.
 */
function haproxyStats(socket) {
  return new Promise((resolve, reject) => {
    let out = '';
    const s = net.connect(socket, () => s.end('show stat\n'));
    s.setEncoding('utf8');
    s.on('data', (d) => (out += d));
    s.on('error', reject);
    s.on('end', () => {
      const [head, ...lines] = out.trim().split('\n');
      const cols = head.replace(/^# /, '').split(',');
      const rows = {};
      for (const line of lines) {
        const row = {};
        line.split(',').forEach((v, i) => (row[cols[i]] = v !== '' && /^-?\d+$/.test(v) ? Number(v) : v));
        rows[`${row.pxname}/${row.svname}`] = row;
      }
      resolve(rows);
    });
  });
}

/**
 * `nodeArgs`: the arguments of every node, or a function of the node's index (0, 1, 2) giving them;
 * `binOf`: the binary of a node by its index (undefined: the one built here), read at every start.
 */
export async function startCluster(requests, nodeArgs = [], binOf = () => undefined) {
  const startedMongo = !process.env.LABCHAT_TEST_MONGO_URI && !running(MONGO);
  const startedRedis = !running(REDIS);
  const mongoUri = process.env.LABCHAT_TEST_MONGO_URI || (script(MONGO, 'start'), script(MONGO, 'uri'));
  script(REDIS, 'start');
  const redisUri = script(REDIS, 'uri');
  const db = `client_js_${process.pid}_${Date.now()}`;
  insertRequests(mongoUri, db, requests);
  const env = { LABCHAT_MONGO_URI: mongoUri, LABCHAT_MONGO_DB: db, LABCHAT_REDIS_URL: redisUri };
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes = [];
  const argsOf = typeof nodeArgs === 'function' ? nodeArgs : () => nodeArgs;
  const start = (i) => startNode({ port: ports[i], args: ['--node-id', `node-${i + 1}`, ...argsOf(i)], env, bin: binOf(i) });
  for (let i = 0; i < 3; i++) nodes.push(await start(i));
  const lbPort = await freePort();
  // deploy/haproxy.cfg as shipped, plus a second file that only adds a stats socket (the tests
  // read HAProxy's counters of refused connections, retries and 503s from it).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'labchat-haproxy-'));
  const statsSocket = path.join(dir, 'stats.sock');
  fs.writeFileSync(path.join(dir, 'stats.cfg'), `global\n    stats socket ${statsSocket} mode 600 level user\n`);
  // `-n` lowers the file's `maxconn` (sized for production) to what this machine's open-file limit allows.
  const cfgs = ['-f', path.join(ROOT, 'deploy/haproxy.cfg'), '-f', path.join(dir, 'stats.cfg')];
  const haproxy = spawn('haproxy', [...cfgs, '-db', '-n', '4000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      LABCHAT_LB_BIND: `127.0.0.1:${lbPort}`,
      LABCHAT_NODE_1: `127.0.0.1:${ports[0]}`,
      LABCHAT_NODE_2: `127.0.0.1:${ports[1]}`,
      LABCHAT_NODE_3: `127.0.0.1:${ports[2]}`,
    },
  });
  let haproxyLogs = '';
  /** HAProxy's stderr lines, each with the time it arrived. */
  const haproxyLines = [];
  haproxy.stderr.on('data', (b) => {
    haproxyLogs += b;
    const at = Date.now();
    for (const line of String(b).split('\n')) if (line.trim()) haproxyLines.push({ at, line });
  });
  const haproxyExited = new Promise((resolve) => haproxy.once('exit', resolve));
  await waitPort(lbPort);
  return {
    url: `ws://127.0.0.1:${lbPort}/`,
    nodes,
    haproxyLogs: () => haproxyLogs,
    haproxyLines: () => haproxyLines,
    /** HAProxy's counters now (see `haproxyStats`). */
    lbStats: () => haproxyStats(statsSocket),
    /** The index of the node whose logs show a connection of `userId`. */
    nodeOf(userId) {
      return nodes.findIndex((n) =>
        n.logs().split('\n').some((l) => l.includes('"message":"connection opened"') && l.includes(`"user_id":"${userId}"`)),
      );
    },
    async restart(i) {
      nodes[i] = await start(i);
    },
    async killRedis() {
      process.kill(pidOf('redis-test-server'), 'SIGKILL');
    },
    restartRedis() {
      script(REDIS, 'restart');
    },
    pauseMongo(on) {
      process.kill(pidOf('mongo-test-server'), on ? 'SIGSTOP' : 'SIGCONT');
    },
    async stop() {
      if (haproxy.exitCode === null && haproxy.signalCode === null) haproxy.kill('SIGTERM');
      await Promise.all([haproxyExited, ...nodes.map((n) => n.stop())]);
      fs.rmSync(dir, { recursive: true, force: true });
      if (startedRedis) script(REDIS, 'stop');
      if (startedMongo) script(MONGO, 'stop');
    },
  };
}
