// The demo page's members list and "… is typing" line (GET /): a real `labchat serve --demo` and
// two headless Chromium pages, a teacher and a lab user, in one room.
//
//   LABCHAT_BIN=target/debug/labchat node --test --test-reporter=spec tests/browser/presence.test.mjs
//
// Environment: see harness.mjs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  errors, eventually, join, launchBrowser, message, openPage as open, screenshot, startServer, stopServer,
} from './harness.mjs';

let server; // {proc, base, requestId, teacher, lab, logs}
let browser;
const pageErrors = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
});

function openPage(name) {
  return open(browser, server.base, name, pageErrors);
}

/** The user ids in the members list, sorted. */
function memberIds(page) {
  return page.$$eval('li[data-testid="member"]', (items) => items.map((li) => li.dataset.userId).sort());
}

function waitMembers(page, expected) {
  return eventually(() => memberIds(page), expected, 'the members list');
}

function waitTyping(page, expected) {
  return eventually(() => page.textContent('[data-testid="typing"]'), expected, 'the typing line');
}

/** Counts the `typing` frames this page sends (register before it connects). */
function countTypingFrames(page) {
  const counter = { sent: 0 };
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try {
      if (JSON.parse(String(f.payload)).event === 'typing') counter.sent += 1;
    } catch (_) { /* not JSON: not ours */ }
  }));
  return counter;
}

test('the members list follows who is in the room, and "… is typing" shows for a while', { timeout: 120_000 }, async () => {
  const A = server.requestId;
  const teacher = await openPage('teacher');
  const lab = await openPage('lab');
  const labTyping = countTypingFrames(lab);

  await join(teacher, server.teacher, A);
  await waitMembers(teacher, ['teacher-demo']);
  await join(lab, server.lab, A);
  await waitMembers(teacher, ['lab-demo', 'teacher-demo']);
  await waitMembers(lab, ['lab-demo', 'teacher-demo']);
  assert.equal(await lab.textContent('li[data-testid="member"][data-user-id="lab-demo"]'), 'you LAB');
  assert.equal(await lab.textContent('li[data-testid="member"][data-user-id="teacher-demo"]'), 'teacher-demo TEACHER');

  // The lab types: the teacher sees it, the lab does not; the page sends `typing` at most every 2 s.
  const start = Date.now();
  await lab.locator('#message-input').pressSequentially('The results are ready', { delay: 20 });
  const typedFor = Date.now() - start;
  await waitTyping(teacher, 'lab-demo is typing…');
  await screenshot(teacher, 'presence-1-teacher-sees-typing');
  assert.equal(await lab.textContent('[data-testid="typing"]'), '');
  // It goes away by itself after about 3 s.
  await waitTyping(teacher, '');
  assert.ok(labTyping.sent >= 1, 'the lab page sent no typing frame');
  assert.ok(labTyping.sent <= Math.floor(typedFor / 2000) + 1,
    `the lab page sent ${labTyping.sent} typing frames in ${typedFor} ms of typing`);

  // The teacher types, then sends: the lab's line clears with the message.
  await teacher.locator('#message-input').pressSequentially('On my way');
  await waitTyping(lab, 'teacher-demo is typing…');
  await teacher.press('#message-input', 'Enter');
  await message(lab, 'On my way').waitFor();
  assert.equal(await lab.textContent('[data-testid="typing"]'), '');

  // The lab leaves the room (leaveRoom): gone from the teacher's list.
  await lab.click('#leave-room');
  await waitMembers(teacher, ['teacher-demo']);
  assert.equal(await lab.isHidden('#room'), true);
  assert.deepEqual(await memberIds(lab), []);

  // It comes back from its inbox, then closes its page: gone again.
  await lab.locator(`li[data-testid="inbox-row"][data-request-id="${A}"] button`).click();
  await lab.waitForSelector('#status[data-state="joined"]');
  await waitMembers(teacher, ['lab-demo', 'teacher-demo']);
  await waitMembers(lab, ['lab-demo', 'teacher-demo']);
  assert.deepEqual(await errors(lab), []);
  await lab.context().close();
  await waitMembers(teacher, ['teacher-demo']);

  assert.deepEqual(await errors(teacher), []);
  await teacher.context().close();
  assert.deepEqual(pageErrors, []);
});
