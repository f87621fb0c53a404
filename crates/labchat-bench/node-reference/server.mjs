// The Node reference server of labchat's benchmarks: the same wire contract for what the
// workloads use (the handshake with a JWT, joinRoom, leaveRoom, message, ackMessages,
// readMessages), written as a Node developer would with the `ws` library, an in-memory store and
// HS256 tokens checked with node:crypto. It exists so that labchat's figures can be set beside a
// Node server's, measured by the same client in the same run (docs/benchmarks.md,
// "The Node reference server"). It is not a product: no MongoDB, no Redis, no rate limits.
//
//   node server.mjs --port 8090 --secret S --seed-requests seed.json [--history-limit 50]
import { createHmac, timingSafeEqual, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, word, i, all) => {
    if (word.startsWith('--')) pairs.push([word.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port ?? 8090);
const secret = Buffer.from(args.secret ?? '');
const historyLimit = Number(args['history-limit'] ?? 50);
if (secret.length < 16) throw new Error('--secret of at least 16 bytes is required');

// requestId -> { createdBy, messages: [], members: Set<ws> }
const rooms = new Map();
for (const r of JSON.parse(readFileSync(args['seed-requests'], 'utf8'))) {
  rooms.set(r.id, { createdBy: r.createdBy, messages: [], members: new Set() });
}

function verify(token) {
  const [h, p, s] = token.split('.');
  if (!s) return null;
  const want = createHmac('sha256', secret).update(`${h}.${p}`).digest();
  const got = Buffer.from(s, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) return null;
  if (claims.role !== 'LAB' && claims.role !== 'TEACHER') return null;
  return { id: String(claims.sub), role: claims.role };
}

const allowed = (user, room) => user.role === 'LAB' || room.createdBy === user.id;
let counter = 0;
const objectId = () =>
  Math.floor(Date.now() / 1000).toString(16).padStart(8, '0') +
  randomBytes(5).toString('hex') +
  (counter++ & 0xffffff).toString(16).padStart(6, '0');

const send = (ws, event, data, id) => ws.send(JSON.stringify(id === undefined ? { event, data } : { event, data, id }));
const fail = (ws, code, message, id) => send(ws, 'error', { code, message, retryable: false }, id);

function handle(ws, text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return fail(ws, 'BAD_REQUEST', 'not JSON');
  }
  const { event, data = {}, id } = frame;
  const room = rooms.get(data.requestId);
  if (!room || !allowed(ws.user, room)) return fail(ws, 'FORBIDDEN', 'no such request, or not yours', id);
  switch (event) {
    case 'joinRoom': {
      room.members.add(ws);
      ws.rooms.add(data.requestId);
      const messages = room.messages.slice(-historyLimit);
      send(ws, 'roomHistory', {
        requestId: data.requestId,
        messages,
        hasMore: room.messages.length > messages.length,
        unread: 0,
        firstUnreadId: null,
        members: [],
      }, id);
      if (id !== undefined) send(ws, 'ack', { requestId: data.requestId }, id);
      return;
    }
    case 'leaveRoom':
      room.members.delete(ws);
      ws.rooms.delete(data.requestId);
      if (id !== undefined) send(ws, 'ack', { requestId: data.requestId }, id);
      return;
    case 'message': {
      if (typeof data.message !== 'string' || data.message.trim() === '') return fail(ws, 'BAD_REQUEST', 'message', id);
      const message = {
        id: objectId(),
        requestId: data.requestId,
        seq: room.messages.length + 1,
        senderId: ws.user.id,
        senderRole: ws.user.role,
        message: data.message,
        createdAt: new Date().toISOString(),
        deliveredTo: [],
        readBy: [],
      };
      room.messages.push(message);
      // Encoded once for the whole room, as labchat does.
      const encoded = JSON.stringify({ event: 'message', data: message });
      for (const member of room.members) member.send(encoded);
      if (id !== undefined) send(ws, 'ack', message, id);
      return;
    }
    case 'ackMessages':
    case 'readMessages': {
      const kind = event === 'ackMessages' ? 'messagesDelivered' : 'messageReads';
      const encoded = JSON.stringify({
        event: kind,
        data: { requestId: data.requestId, userId: ws.user.id, messages: data.messages ?? [], at: new Date().toISOString() },
      });
      for (const member of room.members) member.send(encoded);
      if (id !== undefined) send(ws, 'ack', { requestId: data.requestId }, id);
      return;
    }
    default:
      return fail(ws, 'BAD_REQUEST', `unknown event ${event}`, id);
  }
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  verifyClient: (info, done) => {
    const header = info.req.headers.authorization ?? '';
    const user = header.startsWith('Bearer ') ? verify(header.slice(7)) : null;
    if (!user) return done(false, 401, 'Unauthorized');
    info.req.user = user;
    return done(true);
  },
});
wss.on('connection', (ws, req) => {
  ws.user = req.user;
  ws.rooms = new Set();
  ws.on('message', (data) => handle(ws, data.toString()));
  ws.on('close', () => {
    for (const r of ws.rooms) rooms.get(r)?.members.delete(ws);
  });
});
wss.on('listening', () => process.stderr.write(`node-reference: listening on ws://127.0.0.1:${port}/ws\n`));
