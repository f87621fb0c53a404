// Every JSON example of docs/protocol.md and README.md (```json blocks, and the → / ← lines of the
// example sessions) is valid against docs/asyncapi.yaml, so the prose cannot drift from the
// contract. An example that elides a part (`...`, `…`) is skipped, and counted.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Ajv from 'ajv';
import YAML from 'yaml';
import { ROOT } from './harness.mjs';

const spec = YAML.parse(fs.readFileSync(path.join(ROOT, 'docs/asyncapi.yaml'), 'utf8'));
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
// The schemas alone (the rest of the AsyncAPI document is no JSON Schema); their $refs are '#/components/schemas/…'.
ajv.addSchema({ $id: 'spec', components: { schemas: spec.components.schemas } });

/** The value a local `$ref` ('#/a/b') points to in the document. */
function deref(ref) {
  return ref.slice(2).split('/').reduce((v, k) => v[k], spec);
}

/** Event name → frame schema name, for the frames one side sends, read from the document's
 * operations: the server `receive`s client frames and `send`s its own. */
function frameSchemas(action) {
  const out = {};
  for (const op of Object.values(spec.operations)) {
    if (op.action !== action) continue;
    for (const { $ref } of op.messages) {
      let message = deref($ref);
      while (message.$ref) message = deref(message.$ref);
      const schema = message.payload.$ref.split('/').pop();
      assert.ok(!out[message.name] || out[message.name] === schema, `${message.name}: two schemas`);
      out[message.name] = schema;
    }
  }
  return out;
}
const CLIENT = frameSchemas('receive');
const SERVER = frameSchemas('send');

test('the event maps read from docs/asyncapi.yaml cover the events the library sends and receives', () => {
  assert.ok(Object.keys(CLIENT).length >= 12 && Object.keys(SERVER).length >= 11, JSON.stringify({ CLIENT, SERVER }));
  for (const e of ['joinRoom', 'message', 'refreshToken', 'inbox', 'subscribeInbox', 'typing']) assert.ok(CLIENT[e], e);
  for (const e of ['message', 'roomHistory', 'ack', 'error', 'inboxUpdate', 'membersChanged']) assert.ok(SERVER[e], e);
  assert.equal(CLIENT.message, 'SendMessageFrame');
  assert.equal(SERVER.message, 'MessageFrame');
});

/** The examples of a Markdown file: `{text, direction: 'client' | 'server' | undefined}`. */
function examples(file) {
  const md = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out = [];
  for (const [, lang, body] of md.matchAll(/```(\w*)\n([\s\S]*?)```/g)) {
    if (lang === 'json') out.push({ text: body.trim() });
    if (lang === 'text') {
      for (const line of body.split('\n')) {
        const m = /^([→←])\s*(\{.*\})\s*$/.exec(line);
        if (m) out.push({ text: m[2], direction: m[1] === '→' ? 'client' : 'server' });
      }
      // A client frame answered by an `error` with its id is an example of a bad frame: it must be invalid.
      for (const ex of out) {
        if (ex.direction !== 'client' || /\.\.\.|…/.test(ex.text)) continue;
        const id = JSON.parse(ex.text).id;
        ex.bad = out.some((o) => o.direction === 'server' && !/\.\.\.|…/.test(o.text) && JSON.parse(o.text).event === 'error' && JSON.parse(o.text).id === id);
      }
    }
  }
  return out;
}

function schemaFor(value, direction) {
  if (!('event' in value)) {
    if ('seq' in value && 'senderId' in value) return 'ChatMessage';
    if ('code' in value && !('retryable' in value)) return 'HandshakeRefusal';
    return undefined;
  }
  if (direction === 'client') return CLIENT[value.event];
  if (direction === 'server') return SERVER[value.event];
  // A ```json block: a client event unless the name is only a server one (or it has server fields).
  if (value.event in SERVER && (!(value.event in CLIENT) || 'seq' in (value.data ?? {}) || value.event === 'typing' && value.data?.userId)) {
    return SERVER[value.event];
  }
  return CLIENT[value.event];
}

for (const file of ['docs/protocol.md', 'README.md']) {
  test(`every JSON example of ${file} is valid against docs/asyncapi.yaml`, () => {
    const all = examples(file);
    let checked = 0;
    const elided = [];
    for (const ex of all) {
      if (/\.\.\.|…/.test(ex.text)) {
        elided.push(ex.text.slice(0, 60));
        continue;
      }
      const value = JSON.parse(ex.text);
      const name = schemaFor(value, ex.direction);
      assert.ok(name, `no schema for the example ${ex.text.slice(0, 80)}`);
      const validate = ajv.getSchema(`spec#/components/schemas/${name}`);
      if (ex.bad) assert.ok(!validate(value), `${file}: ${ex.text.slice(0, 100)}… is answered with an error, yet is a valid ${name}`);
      else assert.ok(validate(value), `${file}: ${ex.text.slice(0, 100)}… is not a valid ${name}: ${ajv.errorsText(validate.errors)}`);
      checked += 1;
    }
    console.log(`${file}: ${checked} examples valid, ${elided.length} elided and skipped`);
    assert.ok(checked >= 5, `${file}: at least five examples checked (${checked})`);
  });
}
