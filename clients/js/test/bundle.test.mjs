// The browser bundle labchat serves to its demo page (crates/labchat-transport-ws/src/labchat-client.js)
// is exactly what scripts/bundle.mjs makes from this build, so it cannot drift from the library;
// and it is a working ES module with the library's exports.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { COMMITTED, bundle } from '../scripts/bundle.mjs';

test('the committed browser bundle equals a fresh build (npm run build && npm run bundle)', () => {
  const fresh = bundle();
  const committed = fs.readFileSync(COMMITTED, 'utf8');
  assert.ok(committed === fresh, 'the committed bundle is stale: run `npm run build && npm run bundle` in clients/js');
});

test('the bundle exports what the package exports, and they work', async () => {
  const lib = await import('../dist/index.js');
  const bundled = await import(pathToFileURL(COMMITTED).href);
  assert.deepEqual(Object.keys(bundled).sort(), Object.keys(lib).sort());
  assert.equal(bundled.backoffWindow(3, { minDelayMs: 100, maxDelayMs: 1000 }), 400);
  assert.equal(new bundled.LabchatError('X', 'y').message, 'X: y');
  assert.equal(typeof bundled.createClient, 'function');
});
