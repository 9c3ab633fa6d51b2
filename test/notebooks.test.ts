/**
 * Static checks of the committed notebooks: clean (no outputs), lib is the source
 * of truth (no cell redefines a lib export), and every lib import names a file
 * (tslab cannot resolve a folder's index.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const ROOT = path.join(__dirname, '..');
const NB_DIR = path.join(ROOT, 'notebooks');

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: unknown[];
  execution_count?: number | null;
}

function notebooks(): { name: string; cells: Cell[] }[] {
  return fs
    .readdirSync(NB_DIR)
    .filter((f) => f.endsWith('.ipynb'))
    .map((f) => ({
      name: f,
      cells: JSON.parse(fs.readFileSync(path.join(NB_DIR, f), 'utf8')).cells,
    }));
}

const src = (c: Cell) => (Array.isArray(c.source) ? c.source.join('') : c.source);

/** Every name exported by a lib file (functions, classes, consts, types). */
function libExports(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.name.endsWith('.ts')) {
        const re =
          /export\s+(?:async\s+)?(?:function|class|const|let|interface|type)\s+([A-Za-z0-9_]+)/g;
        for (const m of fs.readFileSync(p, 'utf8').matchAll(re)) names.add(m[1]);
      }
    }
  };
  walk(path.join(ROOT, 'lib'));
  return names;
}

test('there is at least one notebook and each is committed without outputs', () => {
  const nbs = notebooks();
  assert.ok(nbs.length >= 1);
  for (const nb of nbs)
    nb.cells.forEach((c, i) => {
      assert.ok(!c.outputs || c.outputs.length === 0, `${nb.name} cell ${i} has outputs`);
      assert.ok(c.execution_count == null, `${nb.name} cell ${i} has an execution count`);
    });
});

test('no notebook cell redefines a lib export', () => {
  const exported = libExports();
  for (const nb of notebooks())
    nb.cells.forEach((c, i) => {
      if (c.cell_type !== 'code') return;
      for (const m of src(c).matchAll(/(?:function|class)\s+([A-Za-z0-9_]+)/g))
        assert.ok(
          !exported.has(m[1]),
          `${nb.name} cell ${i} redefines lib's ${m[1]}: import it instead`,
        );
    });
});

test('notebook imports of lib name existing files, not folders', () => {
  for (const nb of notebooks())
    nb.cells.forEach((c, i) => {
      for (const m of src(c).matchAll(/from '\.\/(lib[^']*)'/g)) {
        const file = path.join(NB_DIR, `${m[1]}.ts`);
        assert.ok(
          fs.existsSync(file),
          `${nb.name} cell ${i} imports './${m[1]}': no such file ${m[1]}.ts`,
        );
      }
    });
});

test('lib imports name files, not folders (tslab does not resolve index.ts)', () => {
  const walk = (dir: string): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((f) => (f.isDirectory() ? walk(path.join(dir, f.name)) : [path.join(dir, f.name)]));
  for (const file of walk(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.ts')))
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']*)'/g)) {
      const target = path.resolve(path.dirname(file), m[1]);
      assert.ok(
        fs.existsSync(`${target}.ts`),
        `${path.relative(ROOT, file)} imports '${m[1]}', which is not a .ts file`,
      );
    }
});
