/**
 * Ablation grids as plain data, expanded into runs with stable ids, each run one
 * train process (lib/runs/train-cli.ts, what `npm run train` runs) on a local pool; the BullMQ worker (lib/queue.ts)
 * calls the same `executeRun`, so a queued run is the same command as a local one.
 * On disk `<out>/<grid>/<id>/` is a finished run (the CLI's files + train.log and
 * sweep.json); attempts work in `<id>.partial`, renamed on success, so a folder
 * named by the id always means done, and a killed attempt resumes from checkpoints.
 * A spec is data from elsewhere (a grid file, or a Redis job anyone with the queue
 * could have written): `validateSpec` checks it whole before anything touches the
 * disk or spawns, and `executeRun` trains only what it returns.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type DeepPartial,
  type ExperimentConfig,
  fromDotted,
  makeConfig,
  PRESETS,
} from '../config/presets';
import { ConfigError } from '../config/schema';
import { gitCommit, labPath, repoRoot } from '../paths';
import { fmtTime } from '../progress';

/** A grid: the preset and base overrides every run shares, the axes it varies, the seeds. */
export interface Grid {
  name: string;
  preset: string;
  base?: DeepPartial<ExperimentConfig>;
  /** dotted config keys → the values to try, e.g. `{ loss: ['siglip', 'clip'] }` */
  axes: Record<string, unknown[]>;
  seeds: number[];
}

/** One expanded run: everything a worker on any machine needs to start it. */
export interface RunSpec {
  id: string;
  grid: string;
  preset: string;
  seed: number;
  /** the axis values of this run (config columns of the results table) */
  axes: Record<string, unknown>;
  /** dotted key → value, passed to the train CLI as `--set key=json` */
  sets: Record<string, unknown>;
}

/** Where and how a run ran (the table's last columns); also in `<run>/run.json`. */
export interface RunMeta {
  id: string;
  backend: string;
  commit: string;
  host: string;
  duration: number; // wall seconds of the train process
}

/** JSON with sorted keys, so two equal configs always hash the same. */
export function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(x);
}

/** The run id: a hash of the validated merged config (which holds the seed). */
export function configId(cfg: ExperimentConfig): string {
  return createHash('sha256').update(stableJson(cfg)).digest('hex').slice(0, 12);
}

/** `{a: {b: 1}}` → `{'a.b': 1}`; arrays are leaves (eval.shots is one value). */
export function flatten(x: object, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v, key));
    else out[key] = v;
  }
  return out;
}

/** The config a spec trains: its preset, seed and dotted settings through the one gate. */
export function specConfig(spec: Pick<RunSpec, 'preset' | 'sets' | 'seed'>): ExperimentConfig {
  return makeConfig(spec.preset, fromDotted({ ...spec.sets, seed: spec.seed }));
}

/** A grid name: it becomes the folder `<out>/<grid>/`, so nothing that could climb out of it. */
export const GRID_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** A run id: `configId`'s 12 hex digits. */
const RUN_ID = /^[0-9a-f]{12}$/;
/** A dotted config key as `--set` takes it: identifiers joined by dots. */
const SET_KEY = /^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/;
const SPEC_KEYS = ['axes', 'grid', 'id', 'preset', 'seed', 'sets'];

/** A failed train process (its exit code: 0 done, 2 config, 3 checkpoint, 4 diverged). */
export class RunError extends Error {
  exitCode = 1;
}

/** A spec refused before anything ran: permanent (exit code 2, like a bad config). */
export class SpecError extends RunError {
  override exitCode = 2;
  override name = 'SpecError';
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A value as a rejection message shows it: JSON, cut short (it may be anything). */
function shown(x: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(x) ?? String(x);
  } catch {
    s = String(x);
  }
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/** The value at a dotted key of a config, own properties only (undefined when absent). */
function at(cfg: unknown, key: string): unknown {
  let x: unknown = cfg;
  for (const part of key.split('.')) {
    if (!isPlainObject(x) || !Object.hasOwn(x, part)) return undefined;
    x = x[part];
  }
  return x;
}

/**
 * A spec as a worker may run it, or a SpecError naming every problem: exactly the
 * keys of a RunSpec (data only: never a path or a command), a grid name matching
 * GRID_NAME, a known preset, an integer seed, `--set` keys that are dotted
 * identifiers, axes that are some of those sets; then the config through the one
 * gate (`specConfig`), and the id recomputed from it. The returned spec is built
 * from the validated parts: its sets are the values the validated config holds,
 * so the train CLI gets exactly what was checked.
 */
export function validateSpec(x: unknown): RunSpec {
  if (!isPlainObject(x)) throw new SpecError(`job: must be an object, got ${shown(x)}`);
  const bad: string[] = [];
  for (const k of Object.keys(x).filter((k) => !SPEC_KEYS.includes(k)))
    bad.push(`unexpected key ${shown(k)} (a job carries only ${SPEC_KEYS.join(', ')})`);
  const has = (k: string) => {
    if (!Object.hasOwn(x, k)) bad.push(`missing key '${k}'`);
    return Object.hasOwn(x, k);
  };
  const { grid, id, preset, seed, sets, axes } = x;
  if (has('grid') && (typeof grid !== 'string' || !GRID_NAME.test(grid)))
    bad.push(`grid: must match ${GRID_NAME}, got ${shown(grid)}`);
  if (has('id') && (typeof id !== 'string' || !RUN_ID.test(id)))
    bad.push(`id: must be 12 hex digits, got ${shown(id)}`);
  if (has('preset') && (typeof preset !== 'string' || !Object.hasOwn(PRESETS, preset)))
    bad.push(`preset: unknown preset ${shown(preset)} (have: ${Object.keys(PRESETS).join(', ')})`);
  if (has('seed') && !Number.isSafeInteger(seed))
    bad.push(`seed: must be an integer, got ${shown(seed)}`);
  if (has('sets') && !isPlainObject(sets)) bad.push(`sets: must be an object, got ${shown(sets)}`);
  else if (isPlainObject(sets))
    for (const k of Object.keys(sets).filter((k) => !SET_KEY.test(k)))
      bad.push(`sets: ${shown(k)} is not a dotted config key`);
  if (has('axes') && !isPlainObject(axes)) bad.push(`axes: must be an object, got ${shown(axes)}`);
  else if (isPlainObject(axes) && isPlainObject(sets))
    for (const [k, v] of Object.entries(axes))
      if (!Object.hasOwn(sets, k) || stableJson(sets[k]) !== stableJson(v))
        bad.push(`axes: ${shown(k)} is not one of the run's sets`);
  if (bad.length) throw new SpecError(`job: ${bad.join('; ')}`);
  const spec = x as unknown as RunSpec;
  let cfg: ExperimentConfig;
  try {
    cfg = specConfig(spec);
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : `config: ${(e as Error).message}`;
    throw new SpecError(`job ${spec.id}: ${msg}`);
  }
  const checked: Record<string, unknown> = {};
  for (const k of Object.keys(spec.sets)) {
    const v = at(cfg, k);
    if (v === undefined) throw new SpecError(`job ${spec.id}: sets: '${k}' is not in the config`);
    checked[k] = structuredClone(v);
  }
  const want = configId(cfg);
  if (want !== spec.id)
    throw new SpecError(
      `job: id '${spec.id}' is not its config's id (the config hashes to ${want})`,
    );
  const checkedAxes = Object.fromEntries(Object.keys(spec.axes).map((k) => [k, checked[k]]));
  return {
    id: want,
    grid: spec.grid,
    preset: spec.preset,
    seed: spec.seed,
    axes: checkedAxes,
    sets: checked,
  };
}

function cartesian(axes: Record<string, unknown[]>): Record<string, unknown>[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(axes)) {
    if (values.length === 0) throw new Error(`axis '${key}' has no values`);
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
  }
  return combos;
}

/** Every axis combination × every seed, axis order as written (seeds innermost). */
export function expandGrid(grid: Grid): RunSpec[] {
  if (!GRID_NAME.test(grid.name))
    throw new Error(`grid name '${grid.name}' must match ${GRID_NAME} (it names a folder)`);
  const base = flatten(grid.base ?? {});
  const runs = cartesian(grid.axes).flatMap((axes) =>
    grid.seeds.map((seed) => {
      const sets = { ...base, ...axes };
      const id = configId(specConfig({ preset: grid.preset, sets, seed }));
      return validateSpec({ id, grid: grid.name, preset: grid.preset, seed, axes, sets });
    }),
  );
  if (new Set(runs.map((r) => r.id)).size < runs.length)
    throw new Error(`${grid.name}: repeated config`);
  return runs;
}

/** `root/…parts`, refused unless it lies strictly inside `root` (parts are validated; this is the backstop). */
function inside(root: string, ...parts: string[]): string {
  const base = path.resolve(labPath(root));
  const dir = path.resolve(base, ...parts);
  const prefix = base.endsWith(path.sep) ? base : base + path.sep;
  if (!dir.startsWith(prefix)) throw new SpecError(`${dir} is outside the sweep folder ${base}`);
  return dir;
}

export const runDir = (root: string, spec: RunSpec) => inside(root, spec.grid, spec.id);

/** A run is complete when its directory exists: attempts only rename on success. */
export const isComplete = (root: string, spec: RunSpec) =>
  fs.existsSync(path.join(runDir(root, spec), 'sweep.json'));

function trainArgs(spec: RunSpec, out: string, resume: boolean): string[] {
  const cli = ['--import', 'tsx', path.join(repoRoot(), 'lib', 'runs', 'train-cli.ts')];
  if (resume) return [...cli, '--resume', out];
  const sets = Object.entries(spec.sets).map(([k, v]) => `--set=${k}=${JSON.stringify(v)}`);
  return [...cli, '--preset', spec.preset, '--seed', String(spec.seed), '--out', out, ...sets];
}

type Exit = { code: number; log: string };

/** Children still running, so a stopped runner (Ctrl-C) can stop them too. */
export const liveChildren = new Set<ChildProcess>();

function spawnTrain(spec: RunSpec, dir: string, resume: boolean): Promise<Exit> {
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'train.log');
  const child = spawn(process.execPath, trainArgs(spec, dir, resume), {
    cwd: repoRoot(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let log = '';
  const keep = (b: Buffer) => {
    log += b.toString();
    fs.appendFileSync(logFile, b);
  };
  fs.appendFileSync(logFile, `--- ${new Date().toISOString()} ${resume ? 'resume' : 'start'}\n`);
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return new Promise((resolve) => {
    let settled = false; // 'close' need not follow a failed spawn's 'error'
    const done = (e: Exit) => {
      if (settled) return;
      settled = true;
      liveChildren.delete(child);
      resolve(e);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      const line = `cannot start ${process.execPath} (${e.code ?? e.message})\n`;
      fs.appendFileSync(logFile, line);
      done({ code: 1, log: log + line });
    });
    child.on('close', (code, signal) => {
      const killed = signal ? `train was killed by ${signal}\n` : '';
      done({ code: code ?? 128, log: log + killed });
    });
  });
}

/** Bad config (2) and divergence (4) would fail again the same way: retrying is pointless. */
export const isPermanent = (e: unknown) =>
  e instanceof RunError && (e.exitCode === 2 || e.exitCode === 4);

const runError = (message: string, exitCode: number) =>
  Object.assign(new RunError(message), { exitCode });

/** An interrupted attempt left checkpoints: the train CLI can `--resume` it. */
function resumable(dir: string): boolean {
  const ck = path.join(dir, 'checkpoints');
  return fs.existsSync(ck) && fs.readdirSync(ck).some((f) => f.endsWith('.bin'));
}

/** Resume the partial run if it can; an unusable checkpoint (exit 3) means a fresh start. */
async function trainPartial(spec: RunSpec, partial: string): Promise<Exit> {
  if (resumable(partial)) {
    const r = await spawnTrain(spec, partial, true);
    if (r.code !== 3) return r;
  }
  fs.rmSync(partial, { recursive: true, force: true });
  return spawnTrain(spec, partial, false);
}

/**
 * Validate the spec (`validateSpec`: a SpecError, permanent, before anything is
 * written or spawned), train the run in `<id>.partial`, check that the config it trained hashes to the
 * id (a machine with other presets would otherwise file wrong results under it),
 * then rename to `<id>`. Throws a RunError with the log's tail when the run fails.
 */
export async function executeRun(root: string, untrusted: RunSpec): Promise<RunMeta> {
  const spec = validateSpec(untrusted); // before the disk or a process sees any of it
  const final = runDir(root, spec);
  const partial = `${final}.partial`;
  const t0 = Date.now();
  const { code, log } = await trainPartial(spec, partial);
  const duration = (Date.now() - t0) / 1000; // of this attempt (a resume counts only its part)
  if (code !== 0) {
    const cut = (l: string) =>
      l.length > 500 ? `${l.slice(0, 500)}… (${l.length - 500} more chars)` : l;
    const tail = log.trim().split('\n').slice(-8).map(cut).join('\n');
    throw runError(`train exited with ${code}:\n${tail}`, code);
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(partial, 'config.json'), 'utf8'));
  const id = configId(cfg);
  if (id !== spec.id) throw runError(`${spec.id}: trained config hashes to ${id}`, 2);
  const backend = /\[lab\] backend: (.*)/.exec(log)?.[1]?.trim() ?? 'unknown';
  const meta: RunMeta = { id, backend, commit: gitCommit(), host: os.hostname(), duration };
  const sweepJson = `${JSON.stringify({ ...meta, spec }, null, 2)}\n`;
  fs.writeFileSync(path.join(partial, 'sweep.json'), sweepJson);
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(partial, final);
  return meta;
}

/** The meta of a finished run, read back from its directory. */
export function readMeta(root: string, spec: RunSpec): RunMeta {
  return JSON.parse(fs.readFileSync(path.join(runDir(root, spec), 'sweep.json'), 'utf8'));
}

/** Local runner options; `onDone` lets the caller file results as runs finish. */
export interface LocalOptions {
  out: string;
  workers?: number;
  retries?: number; // extra attempts per failed run
  onDone?: (spec: RunSpec, meta: RunMeta) => void;
  log?: (line: string) => void;
}

/** Run ids by outcome, plus what the progress line needs (total, running, start time). */
export interface SweepSummary {
  done: string[];
  skipped: string[];
  failed: { id: string; error: string }[];
  seconds: number;
  total: number;
  running: number;
  t0: number;
}

export function newSummary(total: number, skipped: string[]): SweepSummary {
  return { done: [], skipped, failed: [], seconds: 0, total, running: 0, t0: Date.now() };
}

/** `done/total, running, failed, eta` — the ETA from the mean wall time per finished run. */
export function progressLine(name: string, s: SweepSummary): string {
  const finished = s.done.length + s.failed.length;
  const left = s.total - s.skipped.length - finished;
  const eta = finished ? fmtTime(((Date.now() - s.t0) / 1000 / finished) * left) : '?';
  const done = s.done.length + s.skipped.length;
  return `[sweep ${name}] ${done}/${s.total} done, ${s.running} running, ${s.failed.length} failed, eta ${eta}`;
}

/** One line in `<out>/<grid>/runs.jsonl` per start/done/fail, the sweep's audit trail. */
function logEvent(root: string, spec: RunSpec, event: string, extra: object = {}): void {
  const file = inside(root, spec.grid, 'runs.jsonl');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const rec = { t: new Date().toISOString(), id: spec.id, event, pid: process.pid, ...extra };
  fs.appendFileSync(file, `${JSON.stringify(rec)}\n`);
}

/** Runs a grid on `workers` processes (default: the cores), skipping finished runs, with retries. */
export async function runLocal(grid: Grid, o: LocalOptions): Promise<SweepSummary> {
  const all = expandGrid(grid);
  const todo = all.filter((s) => !isComplete(o.out, s));
  const done = all.filter((s) => !todo.includes(s)).map((s) => s.id);
  const sum = newSummary(all.length, done);
  const workers = Math.max(1, Math.min(o.workers ?? os.cpus().length, todo.length));
  const say = o.log ?? ((l: string) => console.log(l));
  say(
    `[sweep ${grid.name}] ${all.length} runs, ${sum.skipped.length} already done, ${workers} workers`,
  );
  const worker = async () => {
    for (let spec = todo.shift(); spec; spec = todo.shift()) {
      sum.running++;
      await attempts(spec, o, sum, say);
      sum.running--;
      say(progressLine(grid.name, sum));
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  sum.seconds = (Date.now() - sum.t0) / 1000;
  return sum;
}

async function attempts(
  spec: RunSpec,
  o: LocalOptions,
  sum: SweepSummary,
  say: (l: string) => void,
) {
  const tries = 1 + (o.retries ?? 1);
  for (let i = 1; i <= tries; i++) {
    logEvent(o.out, spec, 'start', { attempt: i });
    try {
      const meta = await executeRun(o.out, spec);
      logEvent(o.out, spec, 'done', { attempt: i, duration: meta.duration });
      sum.done.push(spec.id);
      o.onDone?.(spec, meta);
      return;
    } catch (e) {
      const error = (e as Error).message;
      logEvent(o.out, spec, 'fail', { attempt: i, error });
      if (i === tries || isPermanent(e)) {
        sum.failed.push({ id: spec.id, error });
        return;
      }
      say(`[sweep ${spec.grid}] ${spec.id} failed (attempt ${i}/${tries}): ${error}`);
    }
  }
}
