/**
 * Child processes that die or cannot start give one clear line naming what is
 * missing, never a stack dump: the bench's PyTorch server (bench/torch.ts, through
 * `npm run test:bench`'s command) and the notebook runner (scripts/run-notebooks.ts).
 * The Python side is faked through LAB_PYTHON: Debian's python3 with a module hidden,
 * an interpreter that does not exist, or a server that crashes on its first command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ChildError, formatError, TorchServer } from '../bench/torch';

const ROOT = path.join(__dirname, '..');
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-children-'));
const MAX_LINE = 500;

/** An executable file in DIR. */
function script(name: string, text: string): string {
  const file = path.join(DIR, name);
  fs.writeFileSync(file, text, { mode: 0o755 });
  return file;
}

/** Debian's python3 with `modules` unimportable (ModuleNotFoundError), for `-c` and scripts. */
function pythonWithout(...modules: string[]): string {
  return script(
    `python-without-${modules.join('-')}`,
    `#!/usr/bin/python3
import runpy, sys
class Hide:  # what Python says when the package is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ${JSON.stringify(modules)}:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
sys.meta_path.insert(0, Hide())
args = sys.argv[1:]
if args[0] == "-c":
    sys.argv = ["-c", *args[2:]]
    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
`,
  );
}

/** Passes the import check, then answers its first command by crashing. */
const crashingServer = () =>
  script(
    'python-crashing',
    `#!/bin/sh
[ "$1" = "-c" ] && exit 0
read line
echo "Traceback (most recent call last):" >&2
echo "RuntimeError: simulated crash" >&2
exit 3
`,
  );

const MISSING = path.join(DIR, 'no-such-python3');

/** Runs a TypeScript entry point with LAB_PYTHON set; stdout and stderr together. */
function run(entry: string, args: string[], python: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, LAB_PYTHON: python, LAB_QUICK: '', ...extraEnv },
    encoding: 'utf8',
    timeout: 300e3,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Non-zero exit, a line with every one of `words`, no line over MAX_LINE, no bundle source. */
function assertOneClearLine(r: { status: number | null; out: string }, words: string[]) {
  assert.notEqual(r.status, 0, `should fail:\n${r.out.slice(0, 2000)}`);
  const lines = r.out.split('\n');
  const long = lines.filter((l) => l.length > MAX_LINE);
  assert.equal(long.length, 0, `lines over ${MAX_LINE} chars: ${long.map((l) => l.length)}`);
  assert.ok(
    !/tfjs-backend-wasm|EPIPE|^\s+at /m.test(r.out),
    `stack dump:\n${r.out.slice(0, 2000)}`,
  );
  const clear = lines.filter((l) => words.every((w) => l.includes(w)));
  assert.equal(clear.length, 1, `one line naming ${words.join(', ')}:\n${r.out}`);
}

test('bench smoke: a Python without torch fails at once naming python3-torch', () => {
  const r = run('bench/bench.ts', ['--smoke'], pythonWithout('torch'));
  assertOneClearLine(r, ['python3-torch', 'bash scripts/install-system.sh']);
  assert.ok(!r.out.includes('python3-numpy'), 'numpy is there: only torch is missing');
  assert.ok(r.out.trim().split('\n').length <= 2, `more than the message:\n${r.out}`);
});

test('bench smoke: a python3 that does not exist is named, with the install command', () => {
  const r = run('bench/bench.ts', ['--smoke'], MISSING);
  assertOneClearLine(r, [MISSING, 'ENOENT', 'python3-torch', 'bash scripts/install-system.sh']);
});

test('bench smoke: a PyTorch server that dies mid-run gives its last stderr line, no EPIPE', () => {
  const r = run('bench/bench.ts', ['--smoke'], crashingServer());
  assertOneClearLine(r, ['exited with code 3', 'RuntimeError: simulated crash']);
});

test('TorchServer: every way the child fails rejects with one ChildError line', async () => {
  const cases: [string, string, RegExp][] = [
    ['cannot start', MISSING, /cannot start .*ENOENT.*python3-torch/],
    ['exits at import', pythonWithout('torch'), /exited with code 1: .*'torch'.*python3-torch/],
    ['crashes on a command', crashingServer(), /exited with code 3: RuntimeError: simulated crash/],
  ];
  for (const [what, python, expected] of cases) {
    const server = new TorchServer(python);
    // Two calls: the second writes to a dead child (EPIPE) and must reject the same way.
    for (let i = 0; i < 2; i++) {
      const err = await server.load('k', DIR).then(
        () => assert.fail(`${what}: load succeeded`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ChildError, `${what}: ${String(err)}`);
      assert.match(err.message, expected, what);
      assert.ok(!err.message.includes('\n'), `${what}: one line`);
    }
    server.close();
  }
});

test('formatError clips the giant source lines of a bundled module', () => {
  const giant = 'var Module=' + 'x'.repeat(40000);
  const e = new Error(`boom\n${giant}`);
  e.stack = `Error: boom\n${giant}\n    at f (${giant})\n    at g (file.js:1:1)`;
  const text = formatError(e);
  assert.ok(text.startsWith('Error: boom'));
  assert.ok(
    text.split('\n').every((l) => l.length <= MAX_LINE),
    text.slice(0, 200),
  );
  assert.equal(formatError(new ChildError('only this')), 'only this');
});

/** A clean one-cell notebook in its own folder, so the runner reaches its Python check. */
function notebookDir(): string {
  const dir = fs.mkdtempSync(path.join(DIR, 'nb-'));
  const cell = { id: 'c0', cell_type: 'code', metadata: {}, outputs: [], source: '1 + 1' };
  const nb = { cells: [{ ...cell, execution_count: null }], metadata: {}, nbformat: 4 };
  fs.writeFileSync(path.join(dir, 'a.ipynb'), JSON.stringify({ ...nb, nbformat_minor: 5 }));
  return dir;
}

test('notebook runner: a Python without nbclient names python3-nbclient', () => {
  const out = path.join(DIR, 'nb-out');
  const args = ['--dir', notebookDir(), '--out', out];
  const r = run('scripts/run-notebooks.ts', args, pythonWithout('nbclient'));
  assertOneClearLine(r, ['python3-nbclient', 'bash scripts/install-system.sh']);
  assert.ok(!r.out.includes('python3-nbformat'), 'nbformat is there: not named');
  assert.ok(!r.out.includes('running'), 'stops before running anything');
  assert.ok(!fs.existsSync(out), 'wrote nothing');
});

test('notebook runner: a python3 that does not exist is named', () => {
  const args = ['--dir', notebookDir(), '--out', path.join(DIR, 'nb-out2')];
  const r = run('scripts/run-notebooks.ts', args, MISSING);
  assertOneClearLine(r, [MISSING, 'ENOENT', 'python3', 'bash scripts/install-system.sh']);
});

/** Clean one-cell notebooks `names` in a folder of their own. */
function notebooksDir(names: string[]): string {
  const dir = notebookDir();
  fs.rmSync(path.join(dir, 'a.ipynb'));
  const cell = { id: 'c0', cell_type: 'code', metadata: {}, outputs: [], source: '1 + 1' };
  const nb = { cells: [{ ...cell, execution_count: null }], metadata: {}, nbformat: 4 };
  for (const n of names)
    fs.writeFileSync(path.join(dir, `${n}.ipynb`), JSON.stringify({ ...nb, nbformat_minor: 5 }));
  return dir;
}

/**
 * A stand-in for run_notebooks.py: passes `--check`; for a notebook, logs its start and
 * end times (ms) to `log`, sleeps `seconds`, and fails the notebooks named in `failing`.
 */
const fakeRunner = (log: string, seconds: number, failing: string[] = []) =>
  script(
    `python-fake-${path.basename(log)}`,
    `#!/bin/sh
[ "$2" = "--check" ] && exit 0
for a in "$@"; do nb=$(basename "$a" .ipynb); done
echo "$nb start $(date +%s%3N)" >> ${log}
sleep ${seconds}
echo "$nb end $(date +%s%3N)" >> ${log}
case " ${failing.join(' ')} " in *" $nb "*) echo "$nb: FAILED" >&2; exit 1;; esac
echo "$nb: ok"
`,
  );

/** `name → [start, end]` in ms from a fake runner's log. */
function spans(log: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const line of fs.readFileSync(log, 'utf8').trim().split('\n')) {
    const [nb, what, t] = line.split(' ');
    out[nb] ??= [0, 0];
    out[nb][what === 'start' ? 0 : 1] = Number(t);
  }
  return out;
}

test('notebook runner: --jobs 2 runs two notebooks at once, each line prefixed, and records their times', () => {
  const log = path.join(DIR, 'jobs2.log');
  const out = path.join(DIR, 'nb-jobs2');
  const args = ['--dir', notebooksDir(['a', 'b']), '--out', out, '--jobs', '2'];
  const r = run('scripts/run-notebooks.ts', args, fakeRunner(log, 1));
  assert.equal(r.status, 0, r.out);
  const s = spans(log);
  assert.ok(s.a[0] < s.b[1] && s.b[0] < s.a[1], `should overlap: ${JSON.stringify(s)}`);
  assert.match(r.out, /^\[a\] a: ok$/m);
  assert.match(r.out, /^\[b\] b: ok$/m);
  const timings = JSON.parse(fs.readFileSync(path.join(out, 'timings.json'), 'utf8'));
  assert.deepEqual(Object.keys(timings).sort(), ['a', 'b']);
  assert.ok(timings.a >= 1 && timings.b >= 1, JSON.stringify(timings));
});

test('notebook runner: --jobs 1 runs one at a time, the longest of the last run first', () => {
  const log = path.join(DIR, 'jobs1.log');
  const out = path.join(DIR, 'nb-jobs1');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'timings.json'), JSON.stringify({ a: 1, b: 9 }));
  const args = ['--dir', notebooksDir(['a', 'b']), '--out', out, '--jobs', '1'];
  const r = run('scripts/run-notebooks.ts', args, fakeRunner(log, 0.2));
  assert.equal(r.status, 0, r.out);
  const s = spans(log);
  assert.ok(s.b[1] <= s.a[0], `b (9 s last time) first, then a: ${JSON.stringify(s)}`);
});

test('notebook runner: a fresh out folder takes its order from the times beside the notebooks', () => {
  const log = path.join(DIR, 'committed.log');
  const dir = notebooksDir(['a', 'b', 'c']);
  fs.writeFileSync(path.join(dir, 'timings.json'), JSON.stringify({ a: 1, b: 9, c: 5 }));
  const out = path.join(DIR, 'nb-committed');
  /** The order in which one run, one notebook at a time, started them. */
  const order = () => {
    fs.rmSync(log, { force: true });
    const r = run(
      'scripts/run-notebooks.ts',
      ['--dir', dir, '--out', out, '--jobs', '1'],
      fakeRunner(log, 0.1),
    );
    assert.equal(r.status, 0, r.out);
    const s = spans(log);
    return Object.keys(s).sort((x, y) => s[x][0] - s[y][0]);
  };
  assert.deepEqual(order(), ['b', 'c', 'a']);
  // out's own times (the last run here) win over the committed ones
  fs.writeFileSync(path.join(out, 'timings.json'), JSON.stringify({ a: 20, b: 9, c: 5 }));
  assert.deepEqual(order(), ['a', 'b', 'c']);
});

test('notebook runner: quick runs keep their own timings (timings-quick.json)', () => {
  const out = path.join(DIR, 'nb-quick');
  const args = ['--dir', notebooksDir(['a']), '--out', out, '--jobs', '1'];
  const r = run('scripts/run-notebooks.ts', args, fakeRunner(path.join(DIR, 'quick.log'), 0.1), {
    LAB_QUICK: '1',
  });
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(fs.readdirSync(out).sort(), ['timings-quick.json']);
});

test('notebook runner: a failing notebook fails the run, names it, and the others still run', () => {
  const log = path.join(DIR, 'fail.log');
  const args = ['--dir', notebooksDir(['a', 'b', 'c']), '--out', path.join(DIR, 'nb-fail')];
  const r = run('scripts/run-notebooks.ts', [...args, '--jobs', '2'], fakeRunner(log, 0.1, ['b']));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /1 notebook\(s\) failed: b$/m);
  assert.deepEqual(Object.keys(spans(log)).sort(), ['a', 'b', 'c']);
});

test('notebook runner: a bad --jobs or LAB_NOTEBOOK_JOBS is one clear line', () => {
  const args = ['--dir', notebookDir(), '--out', path.join(DIR, 'nb-badjobs')];
  assertOneClearLine(run('scripts/run-notebooks.ts', [...args, '--jobs', '0'], MISSING), [
    '--jobs',
    "'0'",
  ]);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-notebooks.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, LAB_NOTEBOOK_JOBS: 'two' },
    encoding: 'utf8',
  });
  assertOneClearLine({ status: r.status, out: r.stdout + r.stderr }, [
    'LAB_NOTEBOOK_JOBS',
    "'two'",
  ]);
  assert.ok(!fs.existsSync(path.join(DIR, 'nb-badjobs')), 'wrote nothing');
});

test.after(() => fs.rmSync(DIR, { recursive: true, force: true }));
