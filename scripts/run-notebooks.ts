/**
 * `npm run notebooks [-- names...]`: execute notebooks headless through the
 * project-local tslab kernel and write executed copies + HTML to out/notebooks/.
 *
 *   npm run notebooks                     # every notebooks/*.ipynb, sorted
 *   npm run notebooks -- 01_siglip lixp   # only these (name, file or path)
 *   npm run test:notebooks                # same with LAB_QUICK=1 (short runs)
 *   ... -- --dir /tmp/scratch --out /tmp/out   # another folder (runner tests)
 *   ... -- --jobs 1                       # one notebook at a time (default: one per core)
 *
 * Notebooks run side by side, one kernel each, each kernel computing on its share of
 * the cores (LAB_THREADS: one thread each when two kernels share this machine's two), longest first by the wall times the
 * last run in the same mode recorded in <out>/timings.json (timings-quick.json under
 * LAB_QUICK); a notebook <out> has no time for yet takes it from the file of the same
 * name beside the notebooks (committed, measured on the 2-core machine), so a fresh
 * clone starts in a good order too. LAB_NOTEBOOK_JOBS sets the default --jobs.
 * Each notebook's lines are printed prefixed with its name as they come.
 *
 * Execution itself is scripts/run_notebooks.py (nbclient + nbconvert under Debian's
 * /usr/bin/python3, or LAB_PYTHON); this wrapper finds the notebooks, refuses dirty ones,
 * sets the environment the kernel needs and first runs `run_notebooks.py --check`, so a
 * missing python3 or Jupyter package stops it with one line naming the Debian package.
 * LAB_QUICK and the rest of the environment pass through.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cores, shareCores } from '../lib/backend/threads';

const ROOT = path.resolve(__dirname, '..');
const PYTHON = process.env.LAB_PYTHON || '/usr/bin/python3';
const INSTALL = 'bash scripts/install-system.sh';
const CELL_TIMEOUT_S = 1800;

/** An expected failure: its message is the whole report. */
class RunnerError extends Error {}

/** `line` cut to `width` characters, marking the cut. */
const clip = (line: string, width = 500) =>
  line.length > width ? `${line.slice(0, width)}… (${line.length - width} more chars)` : line;

type Args = { dir: string; out: string; names: string[]; jobs: number };

/** A positive integer, or a RunnerError naming where the bad value came from. */
function jobCount(value: string, from: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new RunnerError(`${from}: want a whole number ≥ 1, got '${value}'`);
  return n;
}

function parseArgs(argv: string[]): Args {
  const env = process.env.LAB_NOTEBOOK_JOBS;
  const jobs = env ? jobCount(env, 'LAB_NOTEBOOK_JOBS') : cores();
  const args: Args = { dir: path.join(ROOT, 'notebooks'), out: '', names: [], jobs };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir') args.dir = path.resolve(argv[++i]);
    else if (argv[i] === '--out') args.out = path.resolve(argv[++i]);
    else if (argv[i] === '--jobs') args.jobs = jobCount(argv[++i] ?? '', '--jobs');
    else args.names.push(argv[i]);
  }
  args.out ||= path.join(ROOT, 'out', 'notebooks');
  return args;
}

/** Sorted notebooks of `dir`, or the named ones ('x', 'x.ipynb' or a path all work). */
function selectNotebooks(dir: string, names: string[]): string[] {
  const all = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ipynb'))
    .sort();
  if (names.length === 0) return all.map((f) => path.join(dir, f));
  return names.map((n) => {
    const file = path.basename(n).replace(/\.ipynb$/, '') + '.ipynb';
    if (!all.includes(file)) {
      throw new RunnerError(`no notebook ${file} in ${dir}; have: ${all.join(', ') || '(none)'}`);
    }
    return path.join(dir, file);
  });
}

type Cell = { cell_type: string; outputs?: unknown[]; execution_count?: number | null };

/** Indices of cells that carry outputs or an execution count. */
function dirtyCells(file: string): number[] {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8')) as { cells: Cell[] };
  return nb.cells.flatMap((c, i) =>
    (c.outputs?.length ?? 0) > 0 || c.execution_count != null ? [i] : [],
  );
}

/**
 * Notebooks are committed clean (outputs live in out/, not in git diffs), so any
 * notebook in the folder with outputs fails the run before anything executes.
 */
function checkClean(dir: string): string[] {
  const problems: string[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ipynb'))) {
    const cells = dirtyCells(path.join(dir, f));
    if (cells.length > 0) {
      problems.push(
        `${path.relative(ROOT, path.join(dir, f))}: cells ${cells.join(', ')} have outputs ` +
          'or execution counts (clear them: jupyter nbconvert --clear-output --inplace <file>)',
      );
    }
  }
  return problems;
}

/** Why `python` could not start, as one line naming what to install. */
function cannotStart(python: string, err: Error): RunnerError {
  const code = (err as NodeJS.ErrnoException).code ?? err.message;
  return new RunnerError(
    `notebook runner: cannot start ${python} (${code}); it needs Debian's python3 with ` +
      `python3-nbclient and jupyter-nbconvert; install them: ${INSTALL}`,
  );
}

/**
 * `run_notebooks.py --check`: the Python packages and the tslab kernelspec. Throws one
 * line (the checker's own, naming the Debian package, or the last line of its stderr).
 */
function checkRunner(script: string, env: NodeJS.ProcessEnv): void {
  const r = spawnSync(PYTHON, [script, '--check'], { encoding: 'utf8', env, cwd: ROOT });
  if (r.error) throw cannotStart(PYTHON, r.error);
  if (r.status === 0) return;
  const last = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
  const why = last ?? (r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`);
  throw new RunnerError(clip(why.startsWith('notebook runner:') ? why : `notebook runner: ${why}`));
}

/**
 * JUPYTER_PATH must be absolute, or the kernelspec's {resource_dir} breaks;
 * each of the `jobs` kernels running at once gets its share of the cores (LAB_THREADS).
 */
function kernelEnv(jobs: number): NodeJS.ProcessEnv {
  const jupyter = path.join(ROOT, 'jupyter');
  const prev = process.env.JUPYTER_PATH;
  return {
    ...shareCores(jobs),
    JUPYTER_PATH: prev ? `${jupyter}${path.delimiter}${prev}` : jupyter,
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
  };
}

/** Quick and full runs differ in which notebook is longest: each mode keeps its own timings. */
const timingsFile = (dir: string) =>
  path.join(dir, process.env.LAB_QUICK ? 'timings-quick.json' : 'timings.json');

function readJson(file: string): Record<string, number> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return {}; // absent or unreadable: no times from this file
  }
}

/**
 * Wall seconds per notebook, to start the longest first: the last run in this mode
 * under `out`, else the committed times beside the notebooks, else 0 (sorted order).
 */
function readTimings(out: string, notebookDir: string): Record<string, number> {
  return { ...readJson(timingsFile(notebookDir)), ...readJson(timingsFile(out)) };
}

function writeTimings(out: string, timings: Record<string, number>): void {
  const file = timingsFile(out);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(timings, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** Writes `text`'s complete lines, each prefixed; returns the unfinished tail. */
function emit(stream: NodeJS.WriteStream, prefix: string, text: string): string {
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  for (const l of lines) stream.write(`${prefix}${l}\n`);
  return tail;
}

type Outcome = { name: string; ok: boolean; seconds: number };

/** One notebook in its own run_notebooks.py process; its output lines prefixed with its name. */
function runOne(py: string[], file: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const name = path.basename(file, '.ipynb');
  const prefix = `[${name}] `;
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [...py, file], {
      env,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out = emit(process.stdout, prefix, out + d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err = emit(process.stderr, prefix, err + d);
    });
    child.on('error', (e) => reject(cannotStart(PYTHON, e)));
    child.on('close', (code, signal) => {
      if (out) process.stdout.write(`${prefix}${out}\n`);
      if (err) process.stderr.write(`${prefix}${err}\n`);
      if (signal)
        process.stderr.write(`${prefix}notebook runner: ${PYTHON} was killed by ${signal}\n`);
      resolve({ name, ok: code === 0, seconds: (Date.now() - start) / 1000 });
    });
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const problems = checkClean(args.dir);
  if (problems.length > 0) {
    console.error(`notebooks must be committed clean:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  const notebooks = selectNotebooks(args.dir, args.names);
  if (notebooks.length === 0) {
    console.log(`no notebooks in ${args.dir}`);
    return 0;
  }
  const script = path.join(ROOT, 'scripts', 'run_notebooks.py');
  const jobs = Math.min(args.jobs, notebooks.length);
  const env = kernelEnv(jobs);
  checkRunner(script, env);
  fs.mkdirSync(args.out, { recursive: true });
  const timings = readTimings(args.out, args.dir);
  const quick = process.env.LAB_QUICK ? ' (LAB_QUICK=' + process.env.LAB_QUICK + ')' : '';
  console.log(`running ${notebooks.length} notebook(s)${quick}, ${jobs} at a time -> ${args.out}`);
  const start = Date.now();
  const time = (f: string) => timings[path.basename(f, '.ipynb')] ?? 0;
  const queue = [...notebooks].sort((a, b) => time(b) - time(a)); // stable: sorted order on ties
  const py = [script, '--out', args.out, '--timeout', String(CELL_TIMEOUT_S)];
  const outcomes: Outcome[] = [];
  const worker = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) outcomes.push(await runOne(py, f, env));
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  for (const o of outcomes) if (o.ok) timings[o.name] = Math.round(o.seconds * 10) / 10;
  writeTimings(args.out, timings);
  console.log(
    `notebooks: ${((Date.now() - start) / 1000).toFixed(1)} s in total (${jobs} at a time)`,
  );
  const failed = outcomes.filter((o) => !o.ok).map((o) => o.name);
  if (failed.length)
    console.error(`${failed.length} notebook(s) failed: ${failed.sort().join(', ')}`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => fail(e),
);

function fail(e: unknown): void {
  // Expected failures in one line; others with a few stack frames, every line clipped.
  const err = e instanceof Error ? e : new Error(String(e));
  const lines = [err.message.split('\n')[0]];
  if (!(e instanceof RunnerError)) {
    lines.push(
      ...(err.stack ?? '')
        .split('\n')
        .filter((l) => /^\s+at /.test(l))
        .slice(0, 6),
    );
  }
  console.error(lines.map((l) => clip(l)).join('\n'));
  process.exitCode = 1;
}
