/**
 * `npm run lint:imports` (part of `npm test`): lib's import graph has no cycles,
 * neither between files nor between folders (model/ must not import objectives/
 * when objectives/ imports model/, …), and lib never reaches into scripts/.
 * The graph comes from madge, type-only imports included. Prints the folder
 * graph, layer by layer, so the README's layout can be checked against it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import madge from 'madge';

const ROOT = path.resolve(__dirname, '..');
const LIB = path.join(ROOT, 'lib');

/** A file's unit: its folder under lib/, or the file itself at lib's top level. */
const unitOf = (file: string) => (file.includes('/') ? `${file.split('/')[0]}/` : file);

/** Every cycle of a graph, each once, as a list of nodes (Tarjan's strongly connected components). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.reverse());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** Layers of an acyclic graph: a unit's layer is one more than its deepest dependency's. */
function layers(graph: Map<string, Set<string>>): string[][] {
  const depth = new Map<string, number>();
  const d = (v: string): number => {
    if (!depth.has(v)) depth.set(v, 1 + Math.max(-1, ...[...(graph.get(v) ?? [])].map(d)));
    return depth.get(v)!;
  };
  const by: string[][] = [];
  for (const v of [...graph.keys()].sort()) {
    by[d(v)] = by[d(v)] ?? [];
    by[d(v)].push(v);
  }
  return by;
}

async function main(): Promise<number> {
  const res = await madge(LIB, {
    fileExtensions: ['ts'],
    tsConfig: path.join(ROOT, 'tsconfig.json'),
    excludeRegExp: [/node_modules/],
  });
  const files = res.obj();
  const problems: string[] = [];
  for (const c of res.circular()) problems.push(`file cycle: ${[...c, c[0]].join(' → ')}`);
  const folders = new Map<string, Set<string>>();
  for (const [file, deps] of Object.entries(files)) {
    const u = unitOf(file);
    if (!folders.has(u)) folders.set(u, new Set());
    for (const dep of deps) if (unitOf(dep) !== u) folders.get(u)!.add(unitOf(dep));
  }
  for (const c of cycles(folders)) {
    const why = c.flatMap((u) => {
      const next = c[(c.indexOf(u) + 1) % c.length];
      return Object.entries(files)
        .filter(([f]) => unitOf(f) === u)
        .flatMap(([f, deps]) => deps.filter((x) => unitOf(x) === next).map((x) => `${f} → ${x}`))
        .slice(0, 1);
    });
    problems.push(`folder cycle: ${[...c, c[0]].join(' → ')} (${why.join('; ')})`);
  }
  for (const file of Object.keys(files)) {
    const src = fs.readFileSync(path.join(LIB, file), 'utf8');
    if (/from '(\.\.\/)+scripts\/|'scripts'/.test(src))
      problems.push(`${file} reaches into scripts/`);
  }
  if (problems.length) {
    for (const p of problems) console.error(`imports: ${p}`);
    return 1;
  }
  const n = Object.keys(files).length;
  console.log(`imports: ${n} lib files, no cycles between files or folders. Layers, bottom up:`);
  layers(folders).forEach((l, i) => {
    console.log(`  ${i}: ${l.join(' ')}`);
  });
  return 0;
}

main().then((code) => process.exit(code));
