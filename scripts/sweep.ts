/**
 * Runs a grid from `sweeps/<grid>.ts`:
 *   npm run sweep -- <grid> [--workers n] [--out out/sweeps] [--results data/results] [--retries 1]
 *   npm run sweep -- <grid> --queue redis://:<password>@host:6379 [--insecure]   (then `npm run worker` on any machines)
 *   npm run sweep -- <grid> --refile [--out …]   (file finished runs again, e.g. after a new metric)
 * Locally: a pool of train processes, resumable (finished runs are skipped).
 * With --queue: enqueue on BullMQ and wait, filing results as jobs complete; jobs
 * are signed when LAB_QUEUE_SECRET is set, and a remote Redis without a password
 * is refused unless --insecure.
 * Either way the grid's table lands in <results>/<grid>.arrow + .csv and a
 * summary (mean ± 95% CI over seeds) is printed. Exit codes: 0 all runs done,
 * 1 some failed, 2 bad arguments.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../lib/paths';
import { showTable } from '../lib/plot/table';
import { backfillResults } from '../lib/runs/fewshot-run';
import { enqueueGrid, redisConnection } from '../lib/runs/queue';
import { appendResults, loadResults, RESULTS_DIR, runRows, summarise } from '../lib/runs/results';
import {
  expandGrid,
  type Grid,
  isComplete,
  liveChildren,
  readMeta,
  runDir,
  runLocal,
  type SweepSummary,
} from '../lib/runs/sweep';

/** A grid definition from `sweeps/<name>.ts` (its default export, or `grid`). */
function loadGrid(name: string): Grid {
  const file = path.join(repoRoot(), 'sweeps', `${name}.ts`);
  if (!fs.existsSync(file)) {
    const have = fs.readdirSync(path.dirname(file)).map((f) => f.replace(/\.ts$/, ''));
    throw new Error(`no grid '${name}' (have: ${have.join(', ')})`);
  }
  const mod = require(file);
  return (mod.default ?? mod.grid) as Grid;
}

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      queue: { type: 'string' },
      workers: { type: 'string' },
      out: { type: 'string', default: 'out/sweeps' },
      results: { type: 'string', default: RESULTS_DIR },
      retries: { type: 'string', default: '1' },
      insecure: { type: 'boolean', default: false },
      refile: { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1)
    throw new Error('usage: sweep <grid> [--queue redis://…] [--workers n]');
  if (values.queue) redisConnection(values.queue, { insecure: values.insecure }); // refuse early
  return { grid: loadGrid(positionals[0]), ...values, retries: Number(values.retries) };
}

type Args = ReturnType<typeof parse>;

/**
 * Files finished runs that the table lacks: a sweep killed between a run's rename
 * and its table write would otherwise skip that run forever without filing it.
 */
function fileFinished(grid: Grid, a: Args): void {
  const have = new Set((loadResults(grid.name, a.results)?.array('run') as string[]) ?? []);
  const missing = expandGrid(grid).filter((s) => isComplete(a.out, s) && !have.has(s.id));
  const rows = missing.flatMap((s) => runRows(s, runDir(a.out, s), readMeta(a.out, s)));
  if (rows.length) appendResults(grid.name, rows, a.results);
}

/**
 * `--refile`: files every finished run of the grid in --out again from its folder,
 * after backfilling what today's runs write and older ones lack (backfillResults),
 * replacing its rows in the table. Nothing trains.
 */
function refile(grid: Grid, a: Args): void {
  const done = expandGrid(grid).filter((s) => isComplete(a.out, s));
  for (const s of done) {
    const dir = runDir(a.out, s);
    const added = backfillResults(dir);
    appendResults(grid.name, runRows(s, dir, readMeta(a.out, s)), a.results);
    console.log(`[refile ${grid.name}] ${s.id}${added ? ' (effective rank added)' : ''}`);
  }
  console.log(
    `[refile ${grid.name}] ${done.length} of ${expandGrid(grid).length} runs filed again`,
  );
}

function runHere(grid: Grid, a: Args): Promise<SweepSummary> {
  fileFinished(grid, a);
  const filed = new Set((loadResults(grid.name, a.results)?.array('run') as string[]) ?? []);
  return runLocal(grid, {
    out: a.out,
    filed,
    workers: a.workers ? Number(a.workers) : undefined,
    retries: a.retries,
    onDone: (spec, meta) =>
      appendResults(grid.name, runRows(spec, runDir(a.out, spec), meta), a.results),
  });
}

function report(grid: Grid, a: Args, s: SweepSummary): void {
  console.log(
    `[sweep ${grid.name}] ${s.done.length} ran, ${s.skipped.length} skipped, ` +
      `${s.failed.length} failed in ${s.seconds.toFixed(0)} s`,
  );
  for (const f of s.failed) console.log(`failed ${f.id}: ${f.error}`);
  const table = loadResults(grid.name, a.results);
  if (!table) return;
  for (const metric of ['loss', 'zeroShot'])
    showTable(summarise(table, Object.keys(grid.axes), metric), {
      title: `${metric}, mean ± ci95 over seeds`,
    });
}

async function main() {
  let a: Args;
  try {
    a = parse();
  } catch (e) {
    console.error(`sweep: ${(e as Error).message}`);
    process.exit(2);
  }
  const stop = () => {
    for (const c of liveChildren) c.kill('SIGTERM');
    process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (a.refile) {
    refile(a.grid, a);
    process.exit(0);
  }
  const s = a.queue
    ? await enqueueGrid(a.grid, a.queue, {
        resultsDir: a.results,
        attempts: a.retries + 1,
        insecure: a.insecure,
      })
    : await runHere(a.grid, a);
  report(a.grid, a, s);
  process.exit(s.failed.length ? 1 : 0);
}

main();
