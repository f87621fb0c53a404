// End-to-end test of labchat's demo page (GET /): a real `labchat serve --demo` on 127.0.0.1 and
// two real headless Chromium pages, a teacher and a lab user, that chat and watch each other's
// delivered and read states change.
//
//   LABCHAT_BIN=target/debug/labchat node --test --test-reporter=spec tests/browser/chat.test.mjs
//
// Environment: LABCHAT_BIN (required) the labchat binary; CHROMIUM (default /usr/bin/chromium);
// LABCHAT_SCREENSHOTS a folder to save screenshots of the two pages in (optional).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.LABCHAT_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.LABCHAT_SCREENSHOTS;
const STEP_MS = 10_000; // the longest any single wait may take

let server; // {proc, base, requestId, teacher, lab, logs}
let browser;
const pageErrors = []; // uncaught errors in any page: each test ends by asserting there are none

/** Starts `labchat serve --demo` on a free port and reads the request id and tokens it prints. */
async function startServer() {
  assert.ok(BIN, 'set LABCHAT_BIN to the labchat binary');
  assert.ok(fs.existsSync(BIN), `no labchat binary at ${BIN}`);
  const proc = spawn(BIN, ['serve', '--demo', '--listen', '127.0.0.1:0', '--log', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let logs = '';
  proc.stderr.on('data', (b) => { logs += b; });
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`labchat printed no demo info in ${STEP_MS} ms:\n${out}\n${logs}`)), STEP_MS);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`labchat exited with ${code}:\n${out}\n${logs}`)); });
    proc.stdout.on('data', (b) => {
      out += b;
      const addr = out.match(/ws:\/\/(127\.0\.0\.1:\d+)\//);
      const requestId = out.match(/request id:\s*([0-9a-f]{24})/);
      const teacher = out.match(/TEACHER token:\s*(\S+)/);
      const lab = out.match(/LAB token:\s*(\S+)/);
      if (addr && requestId && teacher && lab) {
        clearTimeout(timer);
        resolve({ base: `http://${addr[1]}`, requestId: requestId[1], teacher: teacher[1], lab: lab[1] });
      }
    });
  });
  return { proc, logs: () => logs, ...info };
}

/** SIGTERM, then SIGKILL if it has not exited within the bound. */
async function stopServer(s) {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => s.proc.once('exit', resolve));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), STEP_MS);
  await exited;
  clearTimeout(timer);
}

/** A page in its own browser context (its own cookies and storage), on the demo page. */
async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  const resp = await page.goto(server.base + '/');
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()['content-type'], 'text/html; charset=utf-8');
  return page;
}

async function join(page, token, requestId) {
  await page.fill('#token', token);
  await page.fill('#request-id', requestId);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="joined"]');
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

/** The `li` of the message with this text. */
function message(page, text) {
  return page.locator('li[data-testid="message"]', { hasText: text });
}

async function waitState(page, text, state) {
  await page.waitForSelector(`li[data-testid="message"][data-state="${state}"]:has-text(${JSON.stringify(text)})`);
}

async function errors(page) {
  return page.locator('[data-testid="error"]').allTextContents();
}

async function screenshot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    // Playwright gives each launch a fresh, empty user-data dir of its own.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
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

  // The server shutting down: close code 1001, shown with its meaning.
  await page.fill('#request-id', server.requestId);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="joined"]');
  await stopServer(server);
  await page.waitForSelector('#status[data-state="closed"]');
  assert.match((await errors(page))[0], /code 1001: the server is shutting down/);
  await page.context().close();
  assert.deepEqual(pageErrors, []);
});
