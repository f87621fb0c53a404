// The wire types (src/protocol.ts) against docs/asyncapi.yaml: every interface has exactly the
// properties of its schema, each optional exactly when the schema does not require it, and the
// union types list the schema's enums. Read with the TypeScript compiler, so a drift fails here.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import YAML from 'yaml';
import { ROOT } from './harness.mjs';

const spec = YAML.parse(fs.readFileSync(path.join(ROOT, 'docs/asyncapi.yaml'), 'utf8'));
const schemas = spec.components.schemas;
const file = path.join(ROOT, 'clients/js/src/protocol.ts');
const program = ts.createProgram([file], { strict: true, noEmit: true });
const source = program.getSourceFile(file);
const checker = program.getTypeChecker();

/** The interface (or type alias) `name` of protocol.ts, as a type. */
function tsType(name) {
  let found;
  ts.forEachChild(source, (node) => {
    if ((ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) && node.name.text === name) found = node;
  });
  assert.ok(found, `protocol.ts has no ${name}`);
  return checker.getTypeAtLocation(found.name);
}

/** A schema's properties and required names, through $ref and allOf. */
function flatten(schema) {
  if (schema.$ref) return flatten(resolve(schema.$ref));
  const props = { ...(schema.properties ?? {}) };
  const required = new Set(schema.required ?? []);
  for (const part of schema.allOf ?? []) {
    if (part.if) continue;
    const sub = flatten(part);
    Object.assign(props, sub.props);
    sub.required.forEach((r) => required.add(r));
  }
  return { props, required };
}

function resolve(ref) {
  return ref.replace(/^#\//, '').split('/').reduce((o, k) => o[k], spec);
}

// protocol.ts interface → its schema in docs/asyncapi.yaml.
const OBJECTS = {
  Receipt: schemas.Receipt,
  ChatMessage: schemas.ChatMessage,
  Member: schemas.Member,
  RoomHistoryData: schemas.RoomHistoryData,
  ReceiptsEventData: schemas.ReceiptsEventData,
  AckRoom: schemas.AckRoom,
  AckMarked: schemas.AckMarked,
  InboxRow: schemas.InboxRow,
  AckInbox: schemas.AckInbox,
  AckRefreshed: schemas.AckRefreshed,
  ErrorData: schemas.ErrorData,
  SomeoneInRoom: schemas.SomeoneInRoom,
  MemberLeftData: schemas.MemberLeftFrame.properties.data,
  AckMembers: schemas.AckMembers,
  MembersChangedData: schemas.MembersChangedFrame.properties.data,
  MessageEditedData: schemas.MessageEditedFrame.properties.data,
  MessageDeletedData: schemas.MessageDeletedFrame.properties.data,
};

for (const [name, schema] of Object.entries(OBJECTS)) {
  test(`${name} has the fields of its asyncapi schema`, () => {
    const { props, required } = flatten(schema);
    const type = tsType(name);
    const fields = Object.fromEntries(
      checker.getPropertiesOfType(type).map((p) => [p.name, (p.flags & ts.SymbolFlags.Optional) !== 0 ? 'optional' : 'required']),
    );
    const expected = Object.fromEntries(Object.keys(props).map((k) => [k, required.has(k) ? 'required' : 'optional']));
    assert.deepEqual(fields, expected);
  });
}

test('the enums are the schema enums', () => {
  const literals = (name) =>
    tsType(name)
      .types.map((t) => t.value)
      .sort();
  assert.deepEqual(literals('Role'), [...schemas.Role.enum].sort());
  assert.deepEqual(literals('ErrorCode'), [...schemas.ErrorCode.enum].sort());
});

test('every client and server event of the spec has its entry', () => {
  const names = (iface) => checker.getPropertiesOfType(tsType(iface)).map((p) => p.name).sort();
  const messages = spec.channels.chat.messages;
  const server = new Set();
  const client = new Set();
  for (const op of Object.values(spec.operations)) {
    for (const m of op.messages) {
      const msg = resolve(resolve(m.$ref).$ref ?? m.$ref);
      (op.action === 'send' ? server : client).add(msg.name ?? msg.payload?.properties?.event?.const);
    }
  }
  assert.ok(Object.keys(messages).length > 0);
  assert.deepEqual(names('ServerEvents'), [...server].sort());
  assert.deepEqual(names('ClientEvents'), [...client].sort());
});
