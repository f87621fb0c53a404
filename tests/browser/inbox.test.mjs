// The demo page's inbox (GET /): a real `labchat serve --demo` with a second request of the demo
// teacher, and two headless Chromium pages. The inbox lists the rooms most recent first with an
// unread badge, moves a room up when a message is posted in it, and opening a room reads it.
//
//   LABCHAT_BIN=target/debug/labchat node --test --test-reporter=spec tests/browser/inbox.test.mjs
//
// Environment: see harness.mjs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  errors, eventually, join, launchBrowser, message, openPage as open, screenshot, send, startServer, stopServer,
  waitState,
} from './harness.mjs';

let server; // {proc, base, requestId, teacher, lab, logs}
let browser;
let tmp; // holds the seed file
const B = randomBytes(12).toString('hex'); // a second request of the demo teacher
const pageErrors = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'labchat-browser-'));
  const seed = path.join(tmp, 'seed.json');
  fs.writeFileSync(seed, JSON.stringify([{ id: B, createdBy: 'teacher-demo' }]));
  server = await startServer(['--seed-requests', seed]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function openPage(name) {
  return open(browser, server.base, name, pageErrors);
}

/** Connects with `token` and no request id: the inbox only. */
async function connect(page, token) {
  await page.fill('#token', token);
  await page.fill('#request-id', '');
  await page.click('#join');
  await page.waitForSelector('#inbox[data-state="loaded"]');
}

/** The inbox as shown: [[requestId, unread], ...], top first. */
function inboxRows(page) {
  return page.$$eval('li[data-testid="inbox-row"]', (rows) => rows.map((r) => [r.dataset.requestId, Number(r.dataset.unread)]));
}

function waitInbox(page, expected) {
  return eventually(() => inboxRows(page), expected, 'the inbox');
}

function row(page, requestId) {
  return page.locator(`li[data-testid="inbox-row"][data-request-id="${requestId}"]`);
}

test('the inbox lists rooms most recent first with unread badges; opening one reads it', { timeout: 120_000 }, async () => {
  const A = server.requestId;
  const teacher = await openPage('teacher');
  const lab = await openPage('lab');
  await join(teacher, server.teacher, A);
  await connect(lab, server.lab);
  assert.deepEqual(await inboxRows(lab), [], 'no room has a message yet');
  assert.equal(await lab.isHidden('#room'), true);
  assert.equal(await lab.textContent('#status'), 'connected');

  // The teacher posts twice in A: the lab's inbox shows A with 2 unread; the teacher's, 0.
  await send(teacher, 'Samples for A are on their way.');
  await message(teacher, 'Samples for A are on their way.').waitFor();
  await send(teacher, 'Second note on A.');
  await waitInbox(lab, [[A, 2]]);
  assert.equal(await row(lab, A).locator('[data-testid="unread"]').textContent(), '2 unread');
  assert.equal(await row(lab, A).locator('[data-testid="unread"]').isVisible(), true);
  assert.equal(await row(lab, A).locator('.preview').textContent(), 'teacher-demo: Second note on A.');
  await waitInbox(teacher, [[A, 0]]);
  assert.equal(await row(teacher, A).locator('[data-testid="unread"]').isVisible(), false);
  assert.equal(await row(teacher, A).locator('.preview').textContent(), 'you: Second note on A.');

  // A message in B, later: B comes first.
  await join(teacher, server.teacher, B);
  await send(teacher, 'A question about B.');
  await waitInbox(lab, [[B, 1], [A, 2]]);
  await waitInbox(teacher, [[B, 0], [A, 0]]);
  await screenshot(lab, 'inbox-1-lab-unread');

  // The lab opens A from its inbox: A's messages, read at once (the page is visible), so its
  // badge goes to 0; reading moves no room.
  await row(lab, A).locator('button').click();
  await lab.waitForSelector('#status[data-state="joined"]');
  assert.equal(await lab.textContent('#room-title'), A);
  assert.equal(await lab.inputValue('#request-id'), A);
  assert.deepEqual(await lab.locator('li[data-testid="message"] .text').allTextContents(),
    ['Samples for A are on their way.', 'Second note on A.']);
  assert.equal(await lab.locator('li.first-unread .text').textContent(), 'Samples for A are on their way.');
  await waitInbox(lab, [[B, 1], [A, 0]]);
  assert.equal(await row(lab, A).locator('[data-testid="unread"]').isVisible(), false);
  assert.equal(await row(lab, A).locator('button').getAttribute('aria-current'), 'true');
  assert.equal(await row(lab, B).locator('button').getAttribute('aria-current'), null);

  // The lab replies in A: A comes first for both, with 1 unread for the teacher (who is in B).
  await send(lab, 'Received, thanks.');
  await waitInbox(lab, [[A, 0], [B, 1]]);
  await waitInbox(teacher, [[A, 1], [B, 0]]);
  await screenshot(teacher, 'inbox-2-teacher-unread');

  // The teacher opens A from the inbox, on the same connection: B's messages are gone, A's are
  // shown and read, and the lab sees its reply read.
  await row(teacher, A).locator('button').click();
  await teacher.waitForSelector('#status[data-state="joined"]');
  await message(teacher, 'Received, thanks.').waitFor();
  assert.deepEqual(await teacher.locator('li[data-testid="message"] .text').allTextContents(),
    ['Samples for A are on their way.', 'Second note on A.', 'Received, thanks.']);
  await waitInbox(teacher, [[A, 0], [B, 0]]);
  await waitState(lab, 'Received, thanks.', 'read');

  // The lab opens B, then leaves it: B's badge goes to 0, the room closes, the inbox stays.
  await row(lab, B).locator('button').click();
  await message(lab, 'A question about B.').waitFor();
  await waitInbox(lab, [[A, 0], [B, 0]]);
  await lab.click('#leave-room');
  assert.equal(await lab.isHidden('#room'), true);
  assert.equal(await lab.textContent('#status'), 'connected');
  assert.equal(await row(lab, B).locator('button').getAttribute('aria-current'), null);
  await screenshot(lab, 'inbox-3-lab-read');

  for (const page of [teacher, lab]) assert.deepEqual(await errors(page), []);
  await teacher.context().close();
  await lab.context().close();
  assert.deepEqual(pageErrors, []);
});
