/**
 * Sweeps end to end on the `tiny-demo` grid (4 runs of 5 steps): locally,
 * killed and resumed without repeating a finished run; then through BullMQ on a
 * Redis started here, with one of two workers killed mid-run, its job recovered
 * by the queue; the two tables must agree value for value.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { cores } from '../lib/backend/threads';
import { readWeights } from '../lib/model/safetensors';
import { repoRoot } from '../lib/paths';
import {
  loadResults,
  meanCI,
  mergeRows,
  type Row,
  runRows,
  summarise,
  tCritical,
} from '../lib/runs/results';
import { expandGrid, type Grid, runLocal, specConfig } from '../lib/runs/sweep';
import siglipVsClip from '../sweeps/siglip-vs-clip';
import tinyDemo from '../sweeps/tiny-demo';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-sweep-'));
const REDIS = '/usr/bin/redis-server';
const live = new Set<Proc>();

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number>;
}

/** A child in its own process group, so a kill takes its train processes with it. */
function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, {
    cwd: repoRoot(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (b) => {
    text += b;
  });
  child.stderr?.on('data', (b) => {
    text += b;
  });
  const p: Proc = {
    child,
    out: () => text,
    exit: new Promise((r) => child.on('close', (c) => r(c ?? -1))),
  };
  live.add(p);
  p.exit.then(() => live.delete(p));
  return p;
}

const tsx = (script: string, ...args: string[]) =>
  start(process.execPath, ['--import', 'tsx', `scripts/${script}.ts`, ...args]);

function killGroup(p: Proc): void {
  try {
    process.kill(-(p.child.pid as number), 'SIGKILL');
  } catch {} // already gone
}

async function waitFor(what: string, cond: () => boolean, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

after(() => {
  for (const p of live) killGroup(p);
  if (!process.env.KEEP_SWEEP_TMP) fs.rmSync(TMP, { recursive: true, force: true });
});

type Event = { id: string; event: string };
function events(out: string): Event[] {
  const file = path.join(out, 'tiny-demo', 'runs.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Every run of the grid present, and no (run, metric, step) twice. */
function assertOncePerRun(rows: Row[]): void {
  const ids = expandGrid(tinyDemo).map((s) => s.id);
  assert.deepEqual([...new Set(rows.map((r) => r.run))].sort(), [...ids].sort());
  const keys = rows.map((r) => `${r.run}/${r.metric}/${r.step}`);
  assert.equal(new Set(keys).size, keys.length, 'a run appears more than once');
}

/** Every metric by run/metric/step, except wall-clock time, which no rerun repeats. */
const valuesOf = (rows: Row[]) =>
  Object.fromEntries(
    rows
      .filter((r) => r.metric !== 'trainSeconds')
      .map((r) => [`${r.run}/${r.metric}/${r.step}`, r.value]),
  );

test('grid expansion: stable ids, seeds innermost, unknown keys rejected', () => {
  const grid: Grid = tinyDemo;
  const runs = expandGrid(grid);
  assert.equal(runs.length, 4);
  assert.deepEqual(expandGrid(grid), runs, 'ids must not change between expansions');
  assert.deepEqual(
    runs.map((r) => [r.axes['objective.name'], r.seed]),
    [
      ['siglip', 0],
      ['siglip', 1],
      ['clip', 0],
      ['clip', 1],
    ],
  );
  assert.throws(
    () => expandGrid({ ...grid, axes: { 'optim.lrr': [1] } }),
    /optim.lrr: unknown key \(did you mean 'lr'\?\)/,
  );
  assert.throws(
    () => expandGrid({ ...grid, axes: { 'objective.name': ['lixp'], 'objective.alpha': [2] } }),
    /objective.alpha: must be <= 1, got 2/,
  );
  assert.equal(expandGrid(siglipVsClip).length, 18);
});

test('summarise: mean ± t-based 95% CI over seeds, idempotent merge', () => {
  assert.equal(tCritical(2), 4.303);
  const s = meanCI([1, 2, 3]);
  assert.equal(s.mean, 2);
  assert.ok(Math.abs(s.ci95 - (4.303 * 1) / Math.sqrt(3)) < 1e-12);
  const row = (run: string, loss: string, value: number): Row => ({
    run,
    grid: 'g',
    loss,
    seed: 0,
    step: 5,
    metric: 'm',
    value,
    commit: 'c',
    backend: 'b',
    duration: 1,
  });
  let t = mergeRows(null, [row('a', 'x', 1), row('b', 'x', 3)]);
  t = mergeRows(t, [row('a', 'x', 1)]); // the same run filed twice
  assert.equal(t.numRows(), 2);
  const sum = summarise(t, ['loss'], 'm').objects()[0] as Row;
  assert.deepEqual([sum.mean, sum.n], [2, 2]);
});

const LOCAL = path.join(TMP, 'local');
const RES_LOCAL = path.join(TMP, 'res-local');

test('local sweep: killed, resumed, no finished run repeated', { timeout: 240_000 }, async () => {
  const args = ['tiny-demo', '--workers', '2', '--out', LOCAL, '--results', RES_LOCAL];
  const first = tsx('sweep', ...args);
  await waitFor('a finished run', () => events(LOCAL).some((e) => e.event === 'done'));
  killGroup(first);
  await first.exit;
  const before = events(LOCAL);
  const finished = before.filter((e) => e.event === 'done').map((e) => e.id);
  const mtime = (id: string) =>
    fs.statSync(path.join(LOCAL, 'tiny-demo', id, 'results.json')).mtimeMs;
  const stamps = finished.map(mtime);
  assert.ok(finished.length < 4, 'the sweep should have been interrupted before the end');
  // each of the two workers' trainings computes with its share of the cores
  const log = fs.readFileSync(path.join(LOCAL, 'tiny-demo', finished[0], 'train.log'), 'utf8');
  const share = process.env.LAB_THREADS ?? String(Math.max(1, Math.floor(cores() / 2)));
  if (log.includes('native kernels,'))
    assert.match(log, new RegExp(`sgemm \\(${share} threads?\\)`));

  const second = tsx('sweep', ...args);
  assert.equal(await second.exit, 0, second.out());
  const skipped = Number(/(\d+) already done/.exec(second.out())?.[1]);
  assert.ok(skipped >= finished.length, second.out());
  const restarted = events(LOCAL)
    .slice(before.length)
    .filter((e) => e.event === 'start');
  for (const id of finished) assert.ok(!restarted.some((e) => e.id === id), `${id} ran twice`);
  assert.deepEqual(finished.map(mtime), stamps);
  const table = loadResults('tiny-demo', RES_LOCAL);
  assert.ok(table);
  assertOncePerRun(table.objects() as Row[]);
});

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

test('queued sweep: two workers, one killed mid-run, same table as local', {
  timeout: 240_000,
}, async (t) => {
  if (!fs.existsSync(REDIS)) {
    t.skip(`${REDIS} is absent (apt-get install redis-server); the queue path is untested`);
    return;
  }
  try {
    require.resolve('ioredis'); // BullMQ 6 made it an optional peer
  } catch {
    assert.fail(
      "the 'ioredis' package is missing: BullMQ cannot reach Redis (npm install ioredis)",
    );
  }
  const port = await freePort();
  const redis = start(REDIS, [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  await waitFor('redis', () => /Ready to accept connections/.test(redis.out()), 20_000);
  const url = `redis://127.0.0.1:${port}`;
  const res = path.join(TMP, 'res-queue');
  const sweep = tsx('sweep', 'tiny-demo', '--queue', url, '--results', res);
  // Separate run folders, as on separate machines; short locks so the test sees a recovery.
  const worker = (name: string) =>
    tsx('worker', '--queue', url, '--out', path.join(TMP, name), '--lock-ms', '3000');
  const [a, b] = [worker('wA'), worker('wB')];
  await waitFor('worker A to start a run', () => /start \w+/.test(a.out()), 60_000);
  // Kill at once: its train process is starting (booting tsx and the backend alone takes
  // over a second), so the job is surely mid-run. Waiting 2 s here let a quiet machine
  // finish the 5-step run first, and then nothing was left to retry.
  await new Promise((r) => setTimeout(r, 200));
  const killed = (/start (\w+)/.exec(a.out()) as RegExpExecArray)[1];
  killGroup(a);
  assert.ok(
    !new RegExp(`done ${killed}`).test(a.out()),
    'worker A finished its run before the kill',
  );
  const c = worker('wC'); // the machine comes back (as a fresh worker)
  assert.equal(await sweep.exit, 0, sweep.out());
  const redone = new RegExp(`done ${killed}`);
  assert.ok(redone.test(b.out()) || redone.test(c.out()), 'the killed job was not retried');
  const rows = loadResults('tiny-demo', res)?.objects() as Row[];
  assertOncePerRun(rows);
  const local = loadResults('tiny-demo', RES_LOCAL)?.objects() as Row[];
  assert.ok(local, 'needs the local test first');
  assert.deepEqual(valuesOf(rows), valuesOf(local), 'queued and local results differ');
  for (const p of [b, c, redis]) killGroup(p);
});

test('an empty object in a grid base is a setting, not nothing (eval.fewShot: {} turns the suite on)', () => {
  const [spec] = expandGrid({ ...tinyDemo, base: { eval: { fewShot: {} } }, seeds: [0] });
  assert.deepEqual(spec.sets['eval.fewShot'], {});
  assert.deepEqual(specConfig(spec).eval.fewShot, {});
});

test('runs already in the results table count as done (a fresh clone resumes from data/results/)', async () => {
  const ids = new Set(expandGrid(tinyDemo).map((s) => s.id));
  const out = fs.mkdtempSync(path.join(TMP, 'filed-'));
  const lines: string[] = [];
  const sum = await runLocal(tinyDemo, { out, filed: ids, log: (l) => lines.push(l) });
  assert.equal(sum.skipped.length, ids.size, lines.join('\n'));
  assert.equal(sum.done.length, 0);
  assert.deepEqual(fs.readdirSync(out), [], 'nothing ran');
});

test('a run another grid finished with the same config is copied in, not trained again', async () => {
  const one: Grid = { ...tinyDemo, axes: { 'objective.name': ['siglip'] }, seeds: [0] };
  const twin: Grid = { ...one, name: 'tiny-twin' };
  const out = fs.mkdtempSync(path.join(TMP, 'twin-'));
  const first = await runLocal(one, { out, workers: 1, log: () => {} });
  assert.equal(first.done.length, 1);
  const [spec] = expandGrid(twin);
  assert.equal(spec.id, expandGrid(one)[0].id, 'ids hash the config, not the grid');
  const filed: string[] = [];
  const lines: string[] = [];
  const opts = { out, workers: 1, log: (l: string) => lines.push(l) };
  const sum = await runLocal(twin, { ...opts, onDone: (s) => filed.push(`${s.grid}/${s.id}`) });
  assert.equal(sum.done.length, 0, lines.join('\n'));
  assert.deepEqual(filed, [`tiny-twin/${spec.id}`], 'filed under the grid that asked');
  assert.ok(
    lines.some((l) => l.includes('finished in grid tiny-demo, copied')),
    lines.join('\n'),
  );
  assert.ok(!fs.existsSync(path.join(out, 'tiny-twin', 'runs.jsonl')), 'nothing started');
  const weights = (g: string) => fs.readFileSync(path.join(out, g, spec.id, 'weights.safetensors'));
  assert.deepEqual(weights('tiny-twin'), weights('tiny-demo'));
  // a twin whose config does not hash to the id is not trusted: the run trains
  const other: Grid = { ...one, name: 'tiny-other' };
  const cfgFile = path.join(out, 'tiny-demo', spec.id, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, steps: cfg.steps + 1 }));
  fs.rmSync(path.join(out, 'tiny-twin'), { recursive: true });
  const retrained = await runLocal(other, { ...opts, onDone: () => {} });
  assert.equal(retrained.done.length, 1, 'trained, not copied');
});

test('post-training grids: each seed starts from the tower weights of the same seed of another grid', async () => {
  const first: Grid = { ...tinyDemo, name: 'tiny-pre', axes: { 'objective.name': ['siglip'] } };
  const post: Grid = {
    ...tinyDemo,
    name: 'tiny-post',
    // an lr so small the towers stay where they started: the final weights are the init's
    base: { ...tinyDemo.base, steps: 2, optim: { lr: 1e-12 } },
    axes: { 'objective.name': ['lixp'] },
    init: {
      grid: 'tiny-pre',
      preset: tinyDemo.preset,
      sets: { ...first.base, 'objective.name': 'siglip' },
    },
  };
  const pre = expandGrid(first);
  const specs = expandGrid(post);
  for (const s of specs) {
    const from = pre.find((p) => p.seed === s.seed)!;
    assert.equal(s.sets.initFrom, `tiny-pre/${from.id}`);
    assert.equal(
      specConfig(s).initFrom,
      `tiny-pre/${from.id}`,
      'the init is part of the config (and id)',
    );
  }
  const out = fs.mkdtempSync(path.join(TMP, 'post-'));
  const quiet = { out, workers: 1, log: () => {} };
  // without the first grid's runs, the post-training runs fail, naming what is missing
  const lines: string[] = [];
  const missing = await runLocal(
    { ...post, seeds: [0] },
    { ...quiet, retries: 0, log: (l) => lines.push(l) },
  );
  assert.equal(missing.failed.length, 1);
  assert.match(
    fs.readFileSync(path.join(out, 'tiny-post', `${specs[0].id}.partial`, 'train.log'), 'utf8'),
    /tiny-pre\/[0-9a-f]{12}.*not found/,
  );
  fs.rmSync(path.join(out, 'tiny-post'), { recursive: true });
  assert.equal((await runLocal(first, quiet)).failed.length, 0);
  assert.equal((await runLocal(post, quiet)).failed.length, 0);
  for (const s of specs) {
    const towers = (d: string) => {
      const w = readWeights(path.join(d, 'weights.safetensors')).tensors;
      return Object.fromEntries(
        Object.entries(w).filter(([n]) => n.startsWith('img.') || n.startsWith('txt.')),
      );
    };
    const a = towers(path.join(out, 'tiny-pre', String(s.sets.initFrom).split('/')[1]));
    const b = towers(path.join(out, 'tiny-post', s.id));
    assert.ok(Object.keys(a).length > 10);
    for (const [n, t] of Object.entries(a)) {
      const diff = Math.max(...Array.from(t.data, (x, i) => Math.abs(x - b[n].data[i])));
      assert.ok(diff < 1e-6, `${n}: post-training started elsewhere (max |Δ| ${diff})`);
    }
  }
  // what every run files besides accuracies: LIxP's τctx (last, drop from its maximum), the effective rank
  const dir = path.join(out, 'tiny-post', specs[0].id);
  const rows = runRows(specs[0], dir, { commit: 'c', backend: 'b', duration: 1 } as never);
  const value = (m: string) => rows.find((r) => r.metric === m)?.value as number;
  const tau = fs
    .readFileSync(path.join(dir, 'history.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).tauCtx as number);
  assert.equal(value('tauCtx'), tau[tau.length - 1]);
  assert.equal(value('tauCtxDrop'), Math.max(...tau) - tau[tau.length - 1]);
  const rank = value('effectiveRank');
  assert.ok(rank > 1 && rank <= specConfig(specs[0]).model.embedDim, `effective rank ${rank}`);
});
