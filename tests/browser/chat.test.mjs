// End-to-end test of labchat's demo page (GET /): a real `labchat serve --demo` on 127.0.0.1 and
// two real headless Chromium pages, a teacher and a lab user, that chat and watch each other's
// delivered and read states change.
//
//   LABCHAT_BIN=target/debug/labchat node --test --test-reporter=spec tests/browser/chat.test.mjs
//
// Environment: see harness.mjs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  errors, join, launchBrowser, message, openPage as open, screenshot, send, startServer, stopServer, waitState,
} from './harness.mjs';

let server; // {proc, base, requestId, teacher, lab, logs}
let browser;
const pageErrors = []; // uncaught errors in any page: each test ends by asserting there are none

/** A page in its own browser context, on the demo page. */
function openPage(name) {
  return open(browser, server.base, name, pageErrors);
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
});

test('a teacher and a lab user chat and see delivered and read states change', { timeout: 90_000 }, async () => {
  const teacher = await openPage('teacher');
  const lab = await openPage('lab');
  await join(teacher, server.teacher, server.requestId);
  await join(lab, server.lab, server.requestId);
  assert.match(await teacher.textContent('#whoami'), /teacher-demo \(TEACHER\)/);

  // The lab user reads by hand this time, so the teacher sees "delivered" before "read".
  await lab.uncheck('#auto-read');

  await send(teacher, 'Hello lab, the samples are on their way.');
  await message(lab, 'Hello lab, the samples are on their way.').waitFor();
  assert.equal(await message(lab, 'the samples').locator('.sender').textContent(), 'teacher-demo');
  assert.match(await message(lab, 'the samples').locator('time').textContent(), /\d{2}:\d{2}/);

  // Delivered as soon as it reached the lab's page...
  await waitState(teacher, 'the samples are on their way', 'delivered');
  assert.equal(await message(teacher, 'the samples').locator('.state').textContent(), '✓ delivered to lab-demo');
  await screenshot(teacher, '1-teacher-delivered');
  // ...and read when the lab user marks it read.
  assert.equal(await lab.textContent('#mark-read'), 'Mark read (1)');
  await lab.click('#mark-read');
  await waitState(teacher, 'the samples are on their way', 'read');
  assert.equal(await message(teacher, 'the samples').locator('.state').textContent(), '✓✓ read by lab-demo');
  await waitState(lab, 'the samples are on their way', 'read');
  assert.equal(await message(lab, 'the samples').locator('.state').textContent(), '✓✓ read by you');

  // The lab replies; the teacher's page is visible and reads it at once.
  await lab.check('#auto-read');
  await send(lab, 'Thanks! We will start the analysis tomorrow.');
  await message(teacher, 'We will start the analysis tomorrow.').waitFor();
  assert.equal(await message(teacher, 'the analysis').locator('.sender').textContent(), 'lab-demo');
  await waitState(lab, 'We will start the analysis tomorrow.', 'read');
  assert.equal(await message(lab, 'the analysis').locator('.state').textContent(), '✓✓ read by teacher-demo');

  // Both pages show both messages, in order, and no error.
  for (const page of [teacher, lab]) {
    const texts = await page.locator('li[data-testid="message"] .text').allTextContents();
    assert.deepEqual(texts, ['Hello lab, the samples are on their way.', 'Thanks! We will start the analysis tomorrow.']);
    assert.deepEqual(await errors(page), []);
  }

  // A reload and a new join shows the history with its receipts.
  await teacher.reload();
  await join(teacher, server.teacher, server.requestId);
  await waitState(teacher, 'the samples are on their way', 'read');
  await waitState(teacher, 'We will start the analysis tomorrow.', 'read');
  await screenshot(teacher, '2-teacher');
  await screenshot(lab, '3-lab');
  await teacher.context().close();
  await lab.context().close();
  assert.deepEqual(pageErrors, []);
});

test('the sender edits a message, a lab user deletes it: both pages show "(edited)", then "message deleted"', { timeout: 60_000 }, async () => {
  const teacher = await openPage('teacher-edit');
  const lab = await openPage('lab-edit');
  await join(teacher, server.teacher, server.requestId);
  await join(lab, server.lab, server.requestId);
  await send(teacher, 'The result is 41.');
  await message(lab, 'The result is 41.').waitFor();

  // Edit and delete show on one's own messages; a lab user may delete, not edit, the teacher's.
  const mine = message(teacher, 'The result is 41.');
  assert.ok(await mine.locator('[data-testid="edit"]').isVisible());
  assert.ok(await mine.locator('[data-testid="delete"]').isVisible());
  const theirs = message(lab, 'The result is 41.');
  assert.ok(!(await theirs.locator('[data-testid="edit"]').isVisible()));
  assert.ok(await theirs.locator('[data-testid="delete"]').isVisible());

  teacher.once('dialog', (d) => d.accept('The result is 42.'));
  await mine.locator('[data-testid="edit"]').click();
  for (const page of [teacher, lab]) {
    await message(page, 'The result is 42.').waitFor();
    assert.equal(await message(page, 'The result is 42.').locator('[data-testid="edited"]').textContent(), '(edited)');
    assert.equal(await message(page, 'The result is 41.').count(), 0, 'the old text is gone');
  }
  await screenshot(lab, '5-lab-edited');

  const id = await message(lab, 'The result is 42.').getAttribute('data-id');
  lab.once('dialog', (d) => d.accept());
  await message(lab, 'The result is 42.').locator('[data-testid="delete"]').click();
  for (const page of [teacher, lab]) {
    const li = page.locator(`li[data-testid="message"][data-id="${id}"]`);
    await page.waitForSelector(`li[data-testid="message"][data-id="${id}"].deleted`);
    assert.equal(await li.locator('.text').textContent(), 'message deleted');
    assert.equal(await message(page, 'The result is 42.').count(), 0, 'the text is gone');
    assert.ok(!(await li.locator('[data-testid="delete"]').isVisible()));
  }
  await screenshot(teacher, '6-teacher-deleted');
  assert.deepEqual(await errors(teacher), []);
  assert.deepEqual(await errors(lab), []);
  // Closed, so that the next test's server stop drains no more connections than before.
  await teacher.context().close();
  await lab.context().close();
  assert.deepEqual(pageErrors, []);
});

test('errors are shown plainly', { timeout: 60_000 }, async () => {
  const page = await openPage('errors');
  // Not a JWT: refused before connecting.
  await page.fill('#token', 'not a token');
  await page.fill('#request-id', server.requestId);
  await page.click('#join');
  assert.match((await errors(page))[0], /does not look like a JWT/);

  // A JWT the server refuses (wrong signature): the handshake fails.
  const [h, p] = server.lab.split('.');
  await page.fill('#token', `${h}.${p}.AAAA`);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="closed"]');
  await page.waitForSelector('[data-testid="error"] >> text=Could not connect');

  // A request the user may not access: FORBIDDEN from the server.
  await page.fill('#token', server.teacher);
  await page.fill('#request-id', '0123456789abcdef01234567');
  await page.click('#join');
  await page.waitForSelector('[data-testid="error"] >> text=FORBIDDEN');
  assert.match((await errors(page))[0], /FORBIDDEN: you may not access this request \(joinRoom\)/);
  await screenshot(page, '4-errors');

  // The server stopping (SIGTERM drains it): close code 1012, shown with its meaning; the page
  // (the library) keeps reconnecting.
  await page.fill('#request-id', server.requestId);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="joined"]');
  await stopServer(server);
  await page.waitForSelector('#status[data-state="reconnecting"]');
  assert.match((await errors(page))[0], /code 1012: server restarting: reconnect/);
  await page.context().close();
  assert.deepEqual(pageErrors, []);
});

test('the two page URLs that `serve --demo` prints open signed in, and the token leaves the address bar', { timeout: 60_000 }, async () => {
  // A server of its own: an earlier test stops the shared one.
  const demo = await startServer();
  try {
    await chatFromTheLinks(demo);
  } finally {
    await stopServer(demo);
  }
});

async function chatFromTheLinks(demo) {
  for (const url of [demo.teacherPage, demo.labPage]) {
    assert.ok(url.startsWith(`${demo.base}/#token=`), `a page URL with the token in the fragment: ${url.slice(0, 40)}`);
  }
  const teacher = await open(browser, demo.teacherPage, 'teacher-link', pageErrors);
  const lab = await open(browser, demo.labPage, 'lab-link', pageErrors);
  for (const page of [teacher, lab]) {
    await page.waitForSelector('#status[data-state="joined"]');
    assert.equal(new URL(page.url()).hash, '', 'the token is dropped from the address bar');
  }
  assert.match(await lab.textContent('#whoami'), /lab-demo \(LAB\)/);
  await send(teacher, 'Signed in from the link.');
  await message(lab, 'Signed in from the link.').waitFor();
  assert.deepEqual(pageErrors, []);
}
