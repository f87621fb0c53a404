// The drain, measured (docs/deployment.md, "Drain, measured"): CLIENTS clients of the client
// library on three nodes behind HAProxy (deploy/haproxy.cfg, the test MongoDB, redis-server), in
// ROOMS rooms shared across the nodes, one poster per room sending every POST_EVERY_MS; then
// SIGTERM to one node, with the nodes' default --drain-delay and --drain-window. Prints the time
// from SIGTERM to exit, the spread of the drained clients' closes and reconnects, the peak rate of
// reconnects (each followed by its joinRoom) the other nodes took, and the p50/p99 of live
// deliveries between clients that were never closed, before and during the drain. Checks at the
// end that every client holds its room's messages 1..newest, each once.
//
//   LABCHAT_BIN=target/release/labchat node bench/drain.mjs   (scripts/drain-measure.sh does it)
//
// Environment: CLIENTS (2000), ROOMS (100), POST_EVERY_MS (2000), NODE_ARGS (extra arguments of
// every node, space-separated), MODE (`drain`, or `upgrade`: the rolling upgrade of
// docs/deployment.md's step 3 instead, every node in turn drained and started again with
// `--backplane-version 3` while the others still write version 2, all sealed with one secret);
// with LABCHAT_BIN_OLD (a binary of the previous release, which writes and reads unsigned
// version 2 envelopes), step 2 instead: the nodes start on that binary and each in turn is
// drained and started again on this one (version 2, sealing with a secret).

import { startCluster } from '../test/cluster.mjs';
import { TEACHER, client, mintToken, sleep, storedHistory, waitFor } from '../test/harness.mjs';

const CLIENTS = Number(process.env.CLIENTS || 2000);
const ROOMS = Number(process.env.ROOMS || 100);
const POST_EVERY_MS = Number(process.env.POST_EVERY_MS || 2000);
const NODE_ARGS = (process.env.NODE_ARGS || '').split(' ').filter(Boolean);
const UPGRADE = process.env.MODE === 'upgrade';
/** The nodes restarted at the new envelope version so far (upgrade mode). */
const raised = new Set();
const SECRET_ARGS = ['--backplane-secret', 'upgrade-bench-backplane-secret-0123456789'];
const OLD_BIN = process.env.LABCHAT_BIN_OLD;
const argsOf = (i) => {
  if (!UPGRADE) return NODE_ARGS;
  if (OLD_BIN) return raised.has(i) ? [...NODE_ARGS, ...SECRET_ARGS, '--backplane-version', '2'] : NODE_ARGS;
  return [...NODE_ARGS, ...SECRET_ARGS, '--backplane-version', raised.has(i) ? '3' : '2'];
};
const binOf = (i) => (UPGRADE && OLD_BIN && !raised.has(i) ? OLD_BIN : undefined);
/** The node sent SIGTERM: node-2. */
const VICTIM = 1;
const BASELINE_MS = 10_000;

const roomId = (r) => `6751b6df1ad14eaa13a1${String(r).padStart(4, '0')}`;
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] : NaN);
const spread = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]}, p50 ${pct(s, 50)}, p99 ${pct(s, 99)}, max ${s.at(-1)} ms (${s.length})`;
};
/** The most events of `times` (ms, sorted) in any window [t, t + 1 s). */
function peakPerSecond(times) {
  let peak = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j] - times[i] >= 1000) i++;
    peak = Math.max(peak, j - i + 1);
  }
  return peak;
}

const rooms = Array.from({ length: ROOMS }, (_, r) => roomId(r));
const cluster = await startCluster(
  rooms.map((id) => ({ id, createdBy: TEACHER })),
  argsOf,
  binOf,
);
const crowd = [];
/** Live deliveries: [receivedAt, ms from send to receipt, sender index, receiver index]. */
const deliveries = [];
let posting = true;
try {
  const started = Date.now();
  for (let i = 0; i < CLIENTS; i++) {
    const c = client(cluster.url, () => mintToken({ sub: `lab-bench-${i}`, role: 'LAB' }), {
      reconnect: { minDelayMs: 1000, maxDelayMs: 30_000 },
    });
    const x = { i, c, room: c.room(rooms[i % ROOMS]), prev: '', failed: 0, closes: [], opens: [], sends: [] };
    c.on('state', (s) => {
      const now = Date.now();
      if (s.state === 'reconnecting') {
        if (x.prev === 'connecting') x.failed++;
        else x.closes.push({ at: now, code: s.code });
      }
      if (s.state === 'open') x.opens.push(now);
      x.prev = s.state;
    });
    x.room.on('message', (m) => {
      const sent = /^t=(\d+) from (\d+)$/.exec(m.message);
      if (sent && Number(sent[2]) !== i) deliveries.push([Date.now(), Date.now() - Number(sent[1]), Number(sent[2]), i]);
    });
    crowd.push(x);
    if (i % 100 === 99) await sleep(250);
  }
  await waitFor(() => crowd.every((x) => x.room.joined), () => `every client joined (${crowd.filter((x) => x.room.joined).length}/${CLIENTS})`, 300_000);
  console.log(`${CLIENTS} clients joined ${ROOMS} rooms through HAProxy in ${Date.now() - started} ms`);

  // One poster per room (its first client), each at its own phase.
  const posters = crowd.slice(0, ROOMS).map(async (x) => {
    await sleep(Math.random() * POST_EVERY_MS);
    while (posting) {
      x.sends.push(x.room.send(`t=${Date.now()} from ${x.i}`));
      await sleep(POST_EVERY_MS);
    }
  });
  await sleep(BASELINE_MS);

  const t0 = Date.now();
  let code;
  let exitedAt;
  /** Upgrade mode: per node, SIGTERM to exit, and exit to ready again (ms). */
  const steps = [];
  if (UPGRADE) {
    for (let i = 0; i < cluster.nodes.length; i++) {
      const termAt = Date.now();
      cluster.nodes[i].proc.kill('SIGTERM');
      const exit = await cluster.nodes[i].exited;
      const downAt = Date.now();
      raised.add(i);
      await cluster.restart(i);
      steps.push({ node: i + 1, exit, drain: downAt - termAt, restart: Date.now() - downAt });
      // As the runbook says: the next node only once this one serves again (HAProxy's check).
      await sleep(3000);
    }
    code = steps.map((s) => s.exit).join(',');
    exitedAt = Date.now();
  } else {
    const victim = cluster.nodes[VICTIM];
    victim.proc.kill('SIGTERM');
    code = await victim.exited;
    exitedAt = Date.now();
  }
  // The last closes reach this process after the exit: HAProxy relays them, this event loop reads them.
  await sleep(2000);
  const drained = crowd.filter((x) => x.closes.length > 0);
  await waitFor(
    () => drained.every((x) => x.opens.some((t) => t > x.closes.at(-1).at) && x.room.joined),
    () => `the drained clients open and joined again (${drained.filter((x) => x.room.joined).length}/${drained.length})`,
    120_000,
  );
  await sleep(2000);
  posting = false;
  await Promise.all(posters);
  const sent = (await Promise.all(crowd.map((x) => Promise.all(x.sends)))).flat().length;

  const closedSet = new Set(drained.map((x) => x.i));
  // A rolling upgrade moves nearly every client at least once: there, every delivery counts.
  const unaffected = (d) => UPGRADE || (!closedSet.has(d[2]) && !closedSet.has(d[3]));
  const latencies = (from, to) =>
    deliveries
      .filter((d) => d[0] >= from && d[0] < to && unaffected(d))
      .map((d) => d[1])
      .sort((a, b) => a - b);
  const before = latencies(t0 - BASELINE_MS, t0);
  const during = latencies(t0, exitedAt + 2000);
  const reopen = drained.map((x) => x.opens.find((t) => t > x.closes[0].at)).sort((a, b) => a - b);

  // Every client holds its room 1..newest, each message once.
  let lost = 0;
  let extra = 0;
  for (const r of rooms) {
    const history = await storedHistory(cluster.url, mintToken({ sub: TEACHER, role: 'TEACHER' }), r);
    const newest = history.at(-1)?.seq ?? 0;
    const members = crowd.filter((x) => x.room.requestId === r);
    await waitFor(() => members.every((x) => (x.room.messages.at(-1)?.seq ?? 0) === newest), `room ${r} caught up`, 60_000);
    for (const x of members) {
      const seqs = new Set(x.room.messages.map((m) => m.seq));
      extra += x.room.messages.length - seqs.size;
      for (let s = 1; s <= newest; s++) if (!seqs.has(s)) lost++;
    }
  }

  if (UPGRADE) {
    const to = OLD_BIN ? 'on this binary (version 2, sealed)' : 'at version 3';
    for (const st of steps) console.log(`node-${st.node}: SIGTERM to exit ${st.drain} ms (code ${st.exit}), exit to listening ${to} ${st.restart} ms`);
    console.log(`rolling upgrade of 3 nodes: ${exitedAt - t0} ms; clients closed at least once ${drained.length}, twice or more ${drained.filter((x) => x.closes.length > 1).length}`);
  } else {
    console.log(`SIGTERM to node-${VICTIM + 1}: exit code ${code} after ${exitedAt - t0} ms`);
  }
  const closedLate = crowd.filter((x) => x.closes.length > 0).length - drained.length;
  console.log(
    `drained clients: ${drained.length} (close codes: ${[...new Set(drained.map((x) => x.closes[0].code))]}); ` +
      `closed later than 2 s after the exit: ${closedLate}`,
  );
  console.log(`  closed after SIGTERM: ${spread(drained.map((x) => x.closes[0].at - t0))}`);
  console.log(`  open again after SIGTERM: ${spread(reopen.map((t) => t - t0))}`);
  console.log(`  peak reconnects (each with its joinRoom) the other two nodes took: ${peakPerSecond(reopen)} in one second`);
  console.log(`  failed handshakes, all clients: ${crowd.reduce((n, x) => n + x.failed, 0)}`);
  console.log(
    `live deliveries between ${UPGRADE ? 'any two' : 'never-closed'} clients, send to receipt: ` +
      `${BASELINE_MS / 1000} s before SIGTERM p50 ${pct(before, 50)} ms, p99 ${pct(before, 99)} ms (${before.length}); ` +
      `SIGTERM to exit + 2 s p50 ${pct(during, 50)} ms, p99 ${pct(during, 99)} ms, max ${during.at(-1)} ms (${during.length})`,
  );
  console.log(`messages sent ${sent}; missing from a client's room ${lost}; held twice ${extra}`);
  const stats = await cluster.lbStats();
  const lb = ['labchat/FRONTEND', 'labchat_nodes/BACKEND'].map((k) =>
    `${k}: ${['econ', 'eresp', 'wretr', 'wredis', 'hrsp_5xx'].filter((c) => typeof stats[k]?.[c] === 'number').map((c) => `${c} ${stats[k][c]}`).join(', ')}`,
  );
  console.log(`HAProxy counters: ${lb.join('; ')}`);
  if (lost || extra || closedLate) process.exitCode = 1;
} finally {
  posting = false;
  for (const x of crowd) x.c.close();
  await cluster.stop();
}
