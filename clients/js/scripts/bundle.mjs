// Joins the tsc output (dist/*.js) into one ES module for browsers that load it without a
// bundler: each module becomes a function scope of its own (so their private names cannot
// collide), in dependency order, and the file exports what dist/index.js exports.
//
// The demo page served by labchat loads the result, committed as
// crates/labchat-transport-ws/src/labchat-client.js; test/bundle.test.mjs checks that file is
// exactly what this script makes from a fresh build.
//
//   node scripts/bundle.mjs            # prints the bundle
//   node scripts/bundle.mjs --write    # writes the committed file

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(HERE, '..', 'dist');
export const COMMITTED = path.join(HERE, '..', '..', '..', 'crates', 'labchat-transport-ws', 'src', 'labchat-client.js');

const IMPORT = /^import \{([^}]*)\} from '\.\/([\w-]+)\.js';$/;
const REEXPORT = /^export \{([^}]*)\} from '\.\/([\w-]+)\.js';$/;
const STAR = /^export \* from '\.\/([\w-]+)\.js';$/;
const DECL = /^export (?:async )?(?:function\*? |class |const |let )([\w$]+)/;

const names = (list) => list.split(',').map((s) => s.trim()).filter(Boolean);

/** One dist module: its imports (module -> names), its own exported names, its body. */
function parse(name) {
  const text = fs.readFileSync(path.join(DIST, `${name}.js`), 'utf8');
  const imports = new Map();
  const exported = [];
  const reexports = [];
  const body = [];
  for (const line of text.split('\n')) {
    let m;
    if ((m = IMPORT.exec(line))) {
      imports.set(m[2], [...(imports.get(m[2]) ?? []), ...names(m[1])]);
    } else if ((m = REEXPORT.exec(line))) {
      reexports.push({ from: m[2], names: names(m[1]) });
    } else if ((m = STAR.exec(line))) {
      reexports.push({ from: m[1], names: '*' });
    } else if (line === 'export {};') {
      // a module of types only
    } else if (/^(import|export) /.test(line) && !DECL.test(line)) {
      throw new Error(`${name}.js: a line the bundler does not know: ${line}`);
    } else {
      if ((m = DECL.exec(line))) exported.push(m[1]);
      body.push(line.replace(/^export /, ''));
    }
  }
  for (const r of reexports) imports.set(r.from, imports.get(r.from) ?? []);
  return { name, imports, exported, reexports, body };
}

/** The bundle's text. */
export function bundle() {
  const modules = new Map();
  const order = [];
  const visit = (name, stack = []) => {
    if (order.includes(name)) return;
    if (stack.includes(name)) throw new Error(`an import cycle: ${[...stack, name].join(' -> ')}`);
    const m = modules.get(name) ?? parse(name);
    modules.set(name, m);
    for (const dep of m.imports.keys()) visit(dep, [...stack, name]);
    order.push(name);
  };
  visit('index');
  const out = [
    '// @labchat/client, built from clients/js by `npm run build && node scripts/bundle.mjs --write`.',
    '// Generated: do not edit (clients/js/test/bundle.test.mjs checks it matches a fresh build).',
    '',
  ];
  for (const name of order.filter((n) => n !== 'index')) {
    const m = modules.get(name);
    out.push(`const $${name} = (() => {`);
    for (const [from, list] of m.imports) if (list.length) out.push(`  const { ${list.join(', ')} } = $${from};`);
    for (const line of m.body) out.push(line ? `  ${line}` : '');
    while (out[out.length - 1] === '') out.pop();
    out.push(`  return { ${m.exported.join(', ')} };`, '})();', '');
  }
  const exported = [];
  for (const r of modules.get('index').reexports) {
    const list = r.names === '*' ? modules.get(r.from).exported : r.names;
    if (list.length) out.push(`const { ${list.join(', ')} } = $${r.from};`);
    exported.push(...list);
  }
  out.push(`export { ${exported.join(', ')} };`, '');
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = bundle();
  if (process.argv.includes('--write')) fs.writeFileSync(COMMITTED, text);
  else process.stdout.write(text);
}
