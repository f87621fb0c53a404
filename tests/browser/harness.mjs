// What the browser tests share: a real `labchat serve --demo` on 127.0.0.1:0, a headless Chromium,
// and the few steps every test takes on labchat's demo page (GET /).
//
// Environment: LABCHAT_BIN (required) the labchat binary; CHROMIUM (default /usr/bin/chromium);
// LABCHAT_SCREENSHOTS a folder to save screenshots of the pages in (optional).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.LABCHAT_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.LABCHAT_SCREENSHOTS;
/** The longest any single wait may take. */
export const STEP_MS = 10_000;

/**
 * Starts `labchat serve --demo` (plus `extraArgs`) on a free port and reads the request id and
 * tokens it prints: `{proc, logs(), base, requestId, teacher, lab}`.
 */
export async function startServer(extraArgs = []) {
  assert.ok(BIN, 'set LABCHAT_BIN to the labchat binary');
  assert.ok(fs.existsSync(BIN), `no labchat binary at ${BIN}`);
  const proc = spawn(BIN, ['serve', '--demo', '--listen', '127.0.0.1:0', '--log', 'warn', ...extraArgs], {
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
      const teacherPage = out.match(/teacher:\s*(http:\/\/\S+)/);
      const labPage = out.match(/lab:\s*(http:\/\/\S+)/);
      if (addr && requestId && teacher && lab && teacherPage && labPage) {
        clearTimeout(timer);
        resolve({
          base: `http://${addr[1]}`,
          requestId: requestId[1],
          teacher: teacher[1],
          lab: lab[1],
          teacherPage: teacherPage[1],
          labPage: labPage[1],
        });
      }
    });
  });
  return { proc, logs: () => logs, ...info };
}

/** SIGTERM, then SIGKILL if it has not exited within the bound. */
export async function stopServer(s) {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => s.proc.once('exit', resolve));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), STEP_MS);
  await exited;
  clearTimeout(timer);
}

/** A headless Chromium (Debian's). */
export function launchBrowser() {
  return chromium.launch({
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
}

/**
 * A page in its own browser context (its own cookies and storage), on the demo page of the server
 * at `base` (or at the full URL `base` when it has a path). Uncaught errors in the page are pushed
 * to `pageErrors`.
 */
export async function openPage(browser, base, name, pageErrors) {
  const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  const resp = await page.goto(/^http:\/\/[^/]+\//.test(base) ? base : base + '/');
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()['content-type'], 'text/html; charset=utf-8');
  return page;
}

/** Connects with `token` and joins the room of `requestId`. */
export async function join(page, token, requestId) {
  await page.fill('#token', token);
  await page.fill('#request-id', requestId);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="joined"]');
}

export async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

/** The `li` of the message with this text. */
export function message(page, text) {
  return page.locator('li[data-testid="message"]', { hasText: text });
}

export async function waitState(page, text, state) {
  await page.waitForSelector(`li[data-testid="message"][data-state="${state}"]:has-text(${JSON.stringify(text)})`);
}

/** The texts of the errors the page shows, newest first. */
export async function errors(page) {
  return page.locator('[data-testid="error"]').allTextContents();
}

export async function screenshot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/**
 * Waits until `read()` resolves to a value deep-equal to `expected`, polling for at most STEP_MS;
 * then fails with the last value read.
 */
export async function eventually(read, expected, what) {
  const deadline = Date.now() + STEP_MS;
  let actual;
  for (;;) {
    actual = await read();
    try {
      assert.deepStrictEqual(actual, expected);
      return;
    } catch (e) {
      if (Date.now() >= deadline) {
        assert.deepStrictEqual(actual, expected, `${what}: still not as expected after ${STEP_MS} ms`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
