/**
 * The one tidy results table of the lab: one row per run × metric × step, with
 * the run id, its axis values as columns, the seed, and where it ran (commit,
 * backend, duration). A grid keeps its table in `data/results/<grid>.arrow`
 * (Arrow IPC through arquero; Parquet needs a codec we do not ship) plus a
 * `.csv` twin for eyes and spreadsheets. Notebooks and reports read it back
 * with `loadResults` and `summarise` (mean ± 95% CI over seeds).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ColumnTable, from, fromArrow, toArrowIPC, toCSV } from 'arquero';
import { labPath, readJsonl } from '../paths';
import { meanCI } from '../stats';
import type { RunMeta, RunSpec } from './sweep';

export type Row = Record<string, string | number | null>;

export const RESULTS_DIR = 'data/results';

/** Columns every table has, in this order; the grid's axis columns go after `grid`. */
const LEAD = ['run', 'grid'];
const TAIL = ['seed', 'step', 'metric', 'value', 'commit', 'backend', 'duration'];

// biome-ignore lint/suspicious/noExplicitAny: files written by the train CLI, shapes checked by use
function readJson(file: string): any {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
}

const readHistory = (dir: string) =>
  readJsonl<Record<string, number>>(path.join(dir, 'history.jsonl'));

/** Periodic evaluations logged during training (`zeroShotMean`, `zs:<task>`) at their steps. */
function historyMetrics(history: Record<string, number>[]): [string, number, number][] {
  const out: [string, number, number][] = [];
  for (const rec of history) {
    for (const [k, v] of Object.entries(rec)) {
      if ((k === 'zeroShotMean' || k.startsWith('zs:')) && typeof v === 'number')
        out.push([k, rec.step, v]);
    }
  }
  return out;
}

/**
 * End-of-run metrics: `loss` (final.json when the CLI wrote one, else the last
 * history record), `zeroShot` / `fewShot<k>` means and per task (`zeroShot:<task>`),
 * the few-shot suite's means (`fs.<method>.<k>`, when the run had `eval.fewShot`),
 * retrieval recalls (`i2t.r1` …), `trainSeconds`, the `effectiveRank` of the
 * visual features, and for LIxP `tauCtx` (final) and `tauCtxDrop` (its maximum over
 * training minus its final value).
 */
function finalMetrics(dir: string, history: Record<string, number>[]): [string, number][] {
  const res = readJson(path.join(dir, 'results.json'));
  const fin = readJson(path.join(dir, 'final.json'));
  const last = history[history.length - 1];
  const out: [string, number][] = [];
  const loss = fin?.loss ?? last?.loss;
  if (typeof loss === 'number') out.push(['loss', loss]);
  const tasks: { task: string; zeroShot: number; fewShot: Record<string, number> }[] = res.results;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  out.push(['zeroShot', mean(tasks.map((t) => t.zeroShot))]);
  for (const k of Object.keys(tasks[0]?.fewShot ?? {}))
    out.push([`fewShot${k}`, mean(tasks.map((t) => t.fewShot[k]))]);
  for (const t of tasks) {
    out.push([`zeroShot:${t.task}`, t.zeroShot]);
    for (const [k, v] of Object.entries(t.fewShot)) out.push([`fewShot${k}:${t.task}`, v]);
  }
  // the few-shot suite's averages (eval.fewShot): fs.<method>.<k>, e.g. fs.tip-cv.16
  for (const r of (res.fewShot ?? []) as { method: string; k: number; mean: number }[])
    out.push([`fs.${r.method}.${r.k}`, r.mean]);
  for (const dirn of ['i2t', 't2i'])
    for (const r of ['r1', 'r5']) out.push([`${dirn}.${r}`, res.retrieval[dirn][r]]);
  out.push(['trainSeconds', res.trainSeconds]);
  if (typeof res.effectiveRank === 'number') out.push(['effectiveRank', res.effectiveRank]);
  // LIxP's context temperature: its last value and how far it fell from its highest
  const tau = history
    .map((h) => h.tauCtx)
    .filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (tau.length) {
    out.push(['tauCtx', tau[tau.length - 1]]);
    out.push(['tauCtxDrop', Math.max(...tau) - tau[tau.length - 1]]);
  }
  return out;
}

/** Axis values become columns; arrays (e.g. eval.shots) are stored as JSON text. */
function axisCells(spec: RunSpec): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(spec.axes))
    out[k] = typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

/** The tidy rows of one finished run directory. */
export function runRows(spec: RunSpec, dir: string, meta: RunMeta): Row[] {
  const history = readHistory(dir);
  const fin = readJson(path.join(dir, 'final.json'));
  const cfg = readJson(path.join(dir, 'config.json'));
  const finalStep: number = fin?.step ?? history[history.length - 1]?.step ?? cfg.steps;
  const common = { run: spec.id, grid: spec.grid, ...axisCells(spec), seed: spec.seed };
  const where = { commit: meta.commit, backend: meta.backend, duration: meta.duration };
  const mk = (metric: string, step: number, value: number): Row => ({
    ...common,
    step,
    metric,
    value,
    ...where,
  });
  return [
    ...historyMetrics(history).map(([m, s, v]) => mk(m, s, v)),
    ...finalMetrics(dir, history).map(([m, v]) => mk(m, finalStep, v)),
  ];
}

/** Column order: run, grid, the axis columns, then the fixed tail. */
function columnsOf(rows: Row[]): string[] {
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  const axes = [...seen].filter((k) => !LEAD.includes(k) && !TAIL.includes(k));
  return [...LEAD, ...axes, ...TAIL];
}

/** Rows as an arquero table with a fixed column order (missing cells are null). */
export function toTable(rows: Row[]): ColumnTable {
  const names = columnsOf(rows);
  const full = rows.map((r) => Object.fromEntries(names.map((n) => [n, r[n] ?? null])));
  return from(full, names);
}

/**
 * Adds runs to a table so that each run appears exactly once: every row of a run
 * already present is replaced by the new rows of that run. Sorted by run, metric, step.
 */
export function mergeRows(table: ColumnTable | null, rows: Row[]): ColumnTable {
  const fresh = new Set(rows.map((r) => r.run));
  const old = table ? (table.objects() as Row[]).filter((r) => !fresh.has(r.run)) : [];
  const all = [...old, ...rows];
  const key = (r: Row) => `${r.run}\u0000${r.metric}\u0000${String(r.step).padStart(12, '0')}`;
  all.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return toTable(all);
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

const fileOf = (name: string, dir: string, ext: string) =>
  path.join(labPath(dir), `${name}.${ext}`);

/** Writes `<dir>/<name>.arrow` and `.csv`, each by temp file + rename. */
export function saveResults(name: string, table: ColumnTable, dir = RESULTS_DIR): void {
  writeAtomic(fileOf(name, dir, 'arrow'), toArrowIPC(table, { format: 'file' }));
  writeAtomic(fileOf(name, dir, 'csv'), toCSV(table));
}

/** The table of a grid, or null when it has none yet. */
export function loadResults(name: string, dir = RESULTS_DIR): ColumnTable | null {
  const file = fileOf(name, dir, 'arrow');
  return fs.existsSync(file) ? (fromArrow(fs.readFileSync(file)) as ColumnTable) : null;
}

/** Load, merge and save in one go: the way runners file a finished run. */
export function appendResults(name: string, rows: Row[], dir = RESULTS_DIR): ColumnTable {
  const table = mergeRows(loadResults(name, dir), rows);
  saveResults(name, table, dir);
  return table;
}

export { meanCI, tCritical } from '../stats';

/**
 * One row per group of `by` (axis columns, usually): mean, std, n and 95% CI
 * half-width of `metric` over the runs in the group (the seeds), each run taken
 * at its last logged step.
 */
export function summarise(table: ColumnTable, by: string[], metric: string): ColumnTable {
  const lastOfRun = new Map<unknown, Row>();
  for (const r of table.objects() as Row[]) {
    if (r.metric !== metric) continue;
    const prev = lastOfRun.get(r.run);
    if (!prev || (r.step as number) > (prev.step as number)) lastOfRun.set(r.run, r);
  }
  const groups = new Map<string, { keys: Row; values: number[] }>();
  for (const r of lastOfRun.values()) {
    const keys = Object.fromEntries(by.map((k) => [k, r[k] ?? null]));
    const g = groups.get(JSON.stringify(keys)) ?? { keys, values: [] };
    g.values.push(r.value as number);
    groups.set(JSON.stringify(keys), g);
  }
  const rows = [...groups.values()].map((g) => ({ ...g.keys, metric, ...meanCI(g.values) }));
  return from(rows.length ? rows : [], [...by, 'metric', 'mean', 'std', 'n', 'ci95']);
}

/** One summary row: the group's axis values, then mean ± 95% CI over seeds. */
export type SummaryRow = Record<string, unknown> & {
  mean: number;
  std: number;
  n: number;
  ci95: number;
};

/**
 * Mean ± 95% CI over seeds of `metric` by the grid's `by` columns, from
 * data/results/<grid>.arrow, or null when the grid has not been run.
 */
export function gridSummary(
  grid: string,
  by: string[],
  metric: string,
  dir = RESULTS_DIR,
): SummaryRow[] | null {
  const table = loadResults(grid, dir);
  if (!table) return null;
  return summarise(table, by, metric).objects() as SummaryRow[];
}

/** Does data/results hold this grid's table? */
export const hasGrid = (grid: string, dir = RESULTS_DIR) =>
  fs.existsSync(labPath(`${dir}/${grid}.arrow`));
