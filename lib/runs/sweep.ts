/**
 * Ablation grids as plain data, expanded into runs with stable ids, each run one
 * train process (lib/runs/train-cli.ts, what `npm run train` runs) on a local
 * pool; the BullMQ worker (lib/runs/queue.ts)
 * calls the same `executeRun`, so a queued run is the same command as a local one.
 * On disk `<out>/<grid>/<id>/` is a finished run (the CLI's files + train.log and
 * sweep.json); attempts work in `<id>.partial`, renamed on success, so a folder
 * named by the id always means done, and a killed attempt resumes from checkpoints.
 * Specs come from spec.ts; `executeRun` trains only what `validateSpec` returns.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cores, shareCores } from '../backend/threads';
import { gitCommit, labPath, repoRoot } from '../paths';
import { fmtTime } from '../progress';
import {
  configId,
  expandGrid,
  type Grid,
  RunError,
  type RunMeta,
  type RunSpec,
  SpecError,
  validateSpec,
} from './spec';

export * from './spec';

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
  // post-training: `initFrom` ('<grid>/<id>', checked by the config schema) is a run of this sweep folder
  const root = path.dirname(path.dirname(out)); // out is <root>/<grid>/<id>.partial
  const init = spec.sets.initFrom
    ? ['--init-from', path.join(root, String(spec.sets.initFrom))]
    : [];
  return [
    ...cli,
    '--preset',
    spec.preset,
    '--seed',
    String(spec.seed),
    '--out',
    out,
    ...init,
    ...sets,
  ];
}

type Exit = { code: number; log: string };

/** Children still running, so a stopped runner (Ctrl-C) can stop them too. */
export const liveChildren = new Set<ChildProcess>();

function spawnTrain(spec: RunSpec, dir: string, resume: boolean, processes: number): Promise<Exit> {
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'train.log');
  const child = spawn(process.execPath, trainArgs(spec, dir, resume), {
    cwd: repoRoot(),
    env: shareCores(processes), // each of the trainings running at once its share of the cores
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
async function trainPartial(spec: RunSpec, partial: string, processes: number): Promise<Exit> {
  if (resumable(partial)) {
    const r = await spawnTrain(spec, partial, true, processes);
    if (r.code !== 3) return r;
  }
  fs.rmSync(partial, { recursive: true, force: true });
  return spawnTrain(spec, partial, false, processes);
}

/**
 * Validate the spec (`validateSpec`: a SpecError, permanent, before anything is
 * written or spawned), train the run in `<id>.partial`, check that the config it trained hashes to the
 * id (a machine with other presets would otherwise file wrong results under it),
 * then rename to `<id>`. Throws a RunError with the log's tail when the run fails.
 * `processes`: how many trainings this machine runs at once (each gets its share of the cores).
 */
export async function executeRun(
  root: string,
  untrusted: RunSpec,
  processes = 1,
): Promise<RunMeta> {
  const spec = validateSpec(untrusted); // before the disk or a process sees any of it
  const final = runDir(root, spec);
  const partial = `${final}.partial`;
  const t0 = Date.now();
  const { code, log } = await trainPartial(spec, partial, processes);
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
  /**
   * ids already in the grid's results table: done, even when their run folders
   * are gone (a new session on a fresh clone resumes from data/results/)
   */
  filed?: ReadonlySet<string>;
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

/**
 * Copies in, rather than trains again, each run of `specs` that another grid of
 * the same sweep folder has finished: ids hash the config, not the grid, so the
 * same id is the same training (llip-tau's τ = 8 runs are llip-k's K = 64 runs).
 * The twin's config must hash to the id; the copy goes to `<id>.adopt`, then is
 * renamed, so a crash never leaves a half-copied run that looks finished.
 * Returns the adopted specs with the grid each came from.
 */
export function adoptTwins(root: string, specs: RunSpec[]): { spec: RunSpec; from: string }[] {
  const base = path.resolve(labPath(root));
  if (!fs.existsSync(base)) return [];
  const grids = fs
    .readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  const adopted: { spec: RunSpec; from: string }[] = [];
  for (const spec of specs) {
    if (isComplete(root, spec)) continue;
    const from = grids.find((g) => {
      if (g === spec.grid) return false;
      const src = path.join(base, g, spec.id);
      if (!fs.existsSync(path.join(src, 'sweep.json'))) return false;
      try {
        return (
          configId(JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'))) === spec.id
        );
      } catch {
        return false; // no readable config: not a twin we can vouch for
      }
    });
    if (!from) continue;
    const dst = runDir(root, spec);
    const tmp = `${dst}.adopt`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.cpSync(path.join(base, from, spec.id), tmp, { recursive: true });
    fs.renameSync(tmp, dst);
    adopted.push({ spec, from });
  }
  return adopted;
}

/**
 * Runs a grid on `workers` processes (default: the cores), skipping finished runs
 * (filed, finished here, or finished by another grid: adoptTwins), with retries.
 */
export async function runLocal(grid: Grid, o: LocalOptions): Promise<SweepSummary> {
  const all = expandGrid(grid);
  const say = o.log ?? ((l: string) => console.log(l));
  for (const { spec, from } of adoptTwins(
    o.out,
    all.filter((s) => !o.filed?.has(s.id)),
  )) {
    say(`[sweep ${grid.name}] ${spec.id}: the same config finished in grid ${from}, copied`);
    o.onDone?.(spec, readMeta(o.out, spec));
  }
  const todo = all.filter((s) => !isComplete(o.out, s) && !o.filed?.has(s.id));
  const done = all.filter((s) => !todo.includes(s)).map((s) => s.id);
  const sum = newSummary(all.length, done);
  const workers = Math.max(1, Math.min(o.workers ?? cores(), todo.length));
  say(
    `[sweep ${grid.name}] ${all.length} runs, ${sum.skipped.length} already done, ${workers} workers`,
  );
  const worker = async () => {
    for (let spec = todo.shift(); spec; spec = todo.shift()) {
      sum.running++;
      await attempts(spec, o, sum, say, workers);
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
  workers: number,
) {
  const tries = 1 + (o.retries ?? 1);
  for (let i = 1; i <= tries; i++) {
    logEvent(o.out, spec, 'start', { attempt: i });
    try {
      const meta = await executeRun(o.out, spec, workers);
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
