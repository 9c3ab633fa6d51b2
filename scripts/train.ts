/**
 * Command-line training: `npm run train -- --preset lab --steps 800 --seed 0 --out out/runs/x
 *   [--set loss=clip --set model.image.width=96]`. Writes config.json, history.jsonl and
 * results.json (zero-shot, k-shot, retrieval) to --out, and prints the results table.
 * Exit codes: 0 done, 2 bad arguments or config.
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/backend';
import { runExperiment } from '../lib/experiment';
import { makeConfig } from '../lib/presets';
import { showTable } from '../lib/table';

function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v; // a bare word such as clip or map
  }
}

/** `a.b.c=v` → { a: { b: { c: v } } } */
function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = target;
  for (const p of parts.slice(0, -1)) {
    if (cur[p] === undefined) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

function parse() {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'lab' },
      steps: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
    },
  });
  const overrides: Record<string, unknown> = {};
  for (const kv of values.set ?? []) {
    const i = kv.indexOf('=');
    if (i < 1) throw new Error(`--set expects key=value, got '${kv}'`);
    setPath(overrides, kv.slice(0, i), parseValue(kv.slice(i + 1)));
  }
  if (values.steps !== undefined) overrides.steps = Number(values.steps);
  if (values.seed !== undefined) overrides.seed = Number(values.seed);
  return { cfg: makeConfig(values.preset ?? 'lab', overrides), out: values.out };
}

async function main() {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    process.exit(2);
  }
  await initBackend();
  console.log(JSON.stringify(parsed.cfg));
  const run = runExperiment(parsed.cfg, { outDir: parsed.out });
  const rows = run.results.map((r) => ({
    task: r.task,
    chance: r.chance,
    zeroShot: r.zeroShot,
    ...Object.fromEntries(Object.entries(r.fewShot).map(([k, v]) => [`${k}-shot`, v])),
  }));
  showTable(rows, {
    title: `${parsed.cfg.name}/${parsed.cfg.loss}: ${run.trainSeconds.toFixed(0)} s training`,
  });
  console.log('retrieval', JSON.stringify(run.retrieval));
}

main();
