// `npm pack` gives a package whose README example runs as written against a real labchat node.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REQUEST_ID, TEACHER, ROOT, mintToken, seedFile, startNode } from './harness.mjs';

const PKG = path.join(ROOT, 'clients/js');

test('the packed package runs its README example', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'labchat-client-pack-'));
  const node = await startNode({ args: ['--seed-requests', seedFile()] });
  try {
    const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: PKG, encoding: 'utf8' }).trim().split('\n').pop();
    const listing = execFileSync('tar', ['-tzf', path.join(dir, tgz)], { encoding: 'utf8' });
    assert.match(listing, /package\/dist\/index\.js/);
    assert.match(listing, /package\/dist\/index\.d\.ts/);
    assert.doesNotMatch(listing, /package\/(src|test|node_modules)\//);

    const readme = fs.readFileSync(path.join(PKG, 'README.md'), 'utf8');
    const example = /```js\n([\s\S]*?)```/.exec(readme)[1];
    assert.ok(example.trim().split('\n').length <= 10, 'the example is at most 10 lines');
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'example', private: true, type: 'module' }));
    fs.writeFileSync(path.join(dir, 'example.mjs'), example);
    const wsVersion = JSON.parse(fs.readFileSync(path.join(PKG, 'package.json'), 'utf8')).devDependencies.ws;
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `./${tgz}`, `ws@${wsVersion}`], { cwd: dir, stdio: 'inherit' });
    const out = execFileSync('node', ['example.mjs'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, LABCHAT_URL: node.url, LABCHAT_TOKEN: mintToken({ sub: TEACHER, role: 'TEACHER' }), LABCHAT_REQUEST_ID: REQUEST_ID },
    });
    assert.match(out, /state: open/);
    assert.match(out, /#1 teacher-7: Is the sample ready\?/);
    assert.match(out, /stored once as [0-9a-f]{24}/);
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
