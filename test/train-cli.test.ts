/**
 * The `npm run train` contract, through real child processes: kill -9 at seeded
 * random steps and resume gives the uninterrupted run's final.json; broken
 * checkpoints exit 3 naming the file (or fall back with a warning); bad
 * arguments exit 2 naming the field; divergence exits 4 keeping the last good
 * checkpoint; a truncated dataset names the file and its Debian package. Last,
 * an in-process experiment with every network entry point patched to throw.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../lib/backend/index';
import { makeConfig } from '../lib/config/presets';
import { clearFashionMnistCache, DEFAULT_FASHION_MNIST_DIR } from '../lib/data/fashionMnist';
import { disposeParams } from '../lib/model/index';
import { Rng } from '../lib/rng';
import { readCheckpoint } from '../lib/runs/checkpoint';
import { runExperiment } from '../lib/runs/experiment';

const ROOT = path.join(__dirname, '..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lab-cli-'));

interface Exit {
  code: number | null;
  signal: string | null;
  stderr: string;
}

/** Run the CLI; with `killAt`, SIGKILL it once history.jsonl has that many lines. */
function cli(args: string[], o: { killAt?: number; out?: string; env?: object } = {}) {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'scripts/train.ts', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  let timer: NodeJS.Timeout | undefined;
  if (o.killAt !== undefined && o.out) {
    const hist = path.join(o.out, 'history.jsonl');
    timer = setInterval(() => {
      const n = fs.existsSync(hist) ? fs.readFileSync(hist, 'utf8').split('\n').length - 1 : 0;
      if (n >= (o.killAt as number)) child.kill('SIGKILL');
    }, 20);
  }
  return new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stderr });
    }),
  );
}

const TINY = ['--preset', 'tiny', '--steps', '40', '--seed', '0', '--checkpoint-every', '5'];
const FAST = ['--no-eval', '--set', 'batchSize=8'];
const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
const losses = (dir: string) =>
  read(dir, 'history.jsonl')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).loss);
let baseline = '';

test('kill -9 at random steps, resume: final.json equals the uninterrupted run', async () => {
  baseline = tmp();
  const killed = tmp();
  const rng = new Rng(Number(process.env.LAB_KILL_SEED ?? 5));
  const k1 = 3 + rng.int(15);
  const k2 = k1 + 5 + rng.int(12);
  const chain = async () => {
    const a = await cli([...TINY, '--out', killed, ...FAST], { killAt: k1, out: killed });
    assert.equal(a.signal, 'SIGKILL', `first run was not killed at step ${k1}: ${a.stderr}`);
    const b = await cli(['--resume', killed], { killAt: k2, out: killed });
    assert.equal(b.signal, 'SIGKILL', `resumed run was not killed at step ${k2}: ${b.stderr}`);
    const c = await cli(['--resume', killed]);
    assert.equal(c.code, 0, c.stderr);
  };
  const [base] = await Promise.all([cli([...TINY, '--out', baseline, ...FAST]), chain()]);
  assert.equal(base.code, 0, base.stderr);
  const final = JSON.parse(read(baseline, 'final.json'));
  assert.equal(final.step, 40);
  assert.match(final.weightsSha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(JSON.parse(read(killed, 'final.json')), final, `kills at steps ${k1}, ${k2}`);
  assert.deepEqual(losses(killed), losses(baseline));
});

/** A copy of the baseline run with `damage` applied to its checkpoint folder. */
function damaged(damage: (ckDir: string) => void): string {
  const dir = tmp();
  fs.cpSync(baseline, dir, { recursive: true });
  damage(path.join(dir, 'checkpoints'));
  return dir;
}

function eachCheckpoint(ckDir: string, f: (file: string, bytes: Buffer) => Buffer | null): void {
  for (const name of fs.readdirSync(ckDir)) {
    const file = path.join(ckDir, name);
    const out = f(name, fs.readFileSync(file));
    if (out) fs.writeFileSync(file, out);
  }
}

test('corrupted, truncated or config-changed checkpoints exit 3 naming the file', async () => {
  assert.ok(baseline, 'needs the baseline run of the previous test');
  const flip = (b: Buffer) => {
    b[b.length >> 1] ^= 1;
    return b;
  };
  const corrupt = damaged((d) => eachCheckpoint(d, (_, b) => flip(b)));
  const truncated = damaged((d) => eachCheckpoint(d, (_, b) => b.subarray(0, b.length - 7)));
  const changed = damaged(() => undefined);
  const cfg = JSON.parse(read(changed, 'config.json'));
  fs.writeFileSync(path.join(changed, 'config.json'), JSON.stringify({ ...cfg, steps: 45 }));
  const newestBad = damaged((d) =>
    eachCheckpoint(d, (name, b) => (name === 'ckpt-00000040.bin' ? flip(b) : null)),
  );
  const [c, t, m, n] = await Promise.all(
    [corrupt, truncated, changed, newestBad].map((dir) => cli(['--resume', dir])),
  );
  assert.equal(c.code, 3, c.stderr);
  assert.match(c.stderr, /ckpt-00000040\.bin: corrupted \(SHA-256 checksum mismatch\)/);
  assert.equal(t.code, 3, t.stderr);
  assert.match(t.stderr, /ckpt-00000040\.bin: truncated/);
  assert.equal(m.code, 3, m.stderr);
  assert.match(m.stderr, /ckpt-00000040\.bin: config mismatch at 'steps'/);
  assert.equal(n.code, 0, n.stderr);
  assert.match(
    n.stderr,
    /warning: skipping bad .*ckpt-00000040\.bin: corrupted.*ckpt-00000035\.bin/,
  );
  assert.deepEqual(
    JSON.parse(read(newestBad, 'final.json')),
    JSON.parse(read(baseline, 'final.json')),
  );
});

test('LIxP and Llip train from the CLI with their scalars in history.jsonl', async () => {
  const runs: Array<[string[], string[]]> = [
    [
      ['--set', 'objective.name=lixp', '--set', 'objective.alpha=0.8'],
      ['tau1', 'tau2', 'tauCtx'],
    ],
    [
      ['--set', 'objective.name=llip', '--set', 'objective.heads=4'],
      ['t', 'b'],
    ],
  ];
  for (const [sets, scalars] of runs) {
    const out = tmp();
    const e = await cli(['--preset', 'tiny', '--steps', '3', '--out', out, ...FAST, ...sets]);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(JSON.parse(read(out, 'config.json')).objective.name, sets[1].split('=')[1]);
    for (const line of read(out, 'history.jsonl').trim().split('\n')) {
      const rec = JSON.parse(line);
      for (const k of scalars) assert.ok(Number.isFinite(rec[k]), `${sets[1]}: no ${k} in ${line}`);
    }
  }
});

test('bad arguments and configs exit 2 with a message naming the field', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--preset', 'tiny', '--steps', 'abc'], /steps: must be an integer, got 'abc'/],
    [
      ['--preset', 'tiny', '--set', 'model.image.heads=3'],
      /model\.image\.heads: \(3\) must divide/,
    ],
    [['--preset', 'tiny', '--set', 'optm.lr=1'], /optm: unknown key \(did you mean 'optim'\?\)/],
    [['--preset', 'nope'], /unknown preset 'nope'/],
    [
      ['--preset', 'tiny', '--set', 'objective.name=lixp', '--set', 'objective.alpha=2'],
      /objective\.alpha: must be <= 1, got 2/,
    ],
    [['--preset', 'tiny', '--set', 'objective.name=lipx'], /objective\.name: must name one of/],
    [['--preset', 'tiny', '--checkpoint-every', 'x'], /--checkpoint-every must be an integer/],
    [['--resume', '/nonexistent/run'], /config\.json not found/],
  ];
  const exits = await Promise.all(cases.map(([args]) => cli(args)));
  exits.forEach((e, i) => {
    assert.equal(e.code, 2, `${cases[i][0].join(' ')}: ${e.stderr}`);
    assert.match(e.stderr, cases[i][1]);
    assert.doesNotMatch(e.stderr, /\n\s+at /, 'a message, not a stack trace');
  });
});

test('divergence exits 4 and keeps the last good checkpoint; a bad dataset names its package', async () => {
  const out = tmp();
  const data = tmp();
  for (const f of fs.readdirSync(DEFAULT_FASHION_MNIST_DIR))
    fs.copyFileSync(path.join(DEFAULT_FASHION_MNIST_DIR, f), path.join(data, f));
  const images = path.join(data, 'train-images-idx3-ubyte.gz');
  fs.writeFileSync(images, fs.readFileSync(images).subarray(0, 4096));
  const [div, bad] = await Promise.all([
    cli([
      '--preset',
      'tiny',
      '--steps',
      '10',
      '--out',
      out,
      '--checkpoint-every',
      '1',
      ...FAST,
      '--set',
      'optim.lr=1e8',
    ]),
    cli(['--preset', 'tiny', '--steps', '2', ...FAST], { env: { FASHION_MNIST_DIR: data } }),
  ]);
  assert.equal(div.code, 4, div.stderr);
  const step = Number(/diverged at step (\d+)/.exec(div.stderr)?.[1]);
  assert.ok(step >= 2, div.stderr);
  const last = path.join(out, 'checkpoints', `ckpt-${String(step - 1).padStart(8, '0')}.bin`);
  assert.equal(readCheckpoint(last, JSON.parse(read(out, 'config.json'))).step, step - 1);
  assert.equal(bad.code, 1, bad.stderr);
  assert.ok(bad.stderr.includes(images), bad.stderr);
  assert.match(bad.stderr, /dataset-fashion-mnist/);
});

test('an experiment makes no network request', async () => {
  await initBackend();
  clearFashionMnistCache(); // reload the dataset under the patch too
  const http = require('node:http');
  const https = require('node:https');
  const net = require('node:net');
  const tls = require('node:tls');
  const dns = require('node:dns');
  const targets: Array<[any, string]> = [
    [http, 'request'],
    [http, 'get'],
    [https, 'request'],
    [https, 'get'],
    [net, 'connect'],
    [net, 'createConnection'],
    [tls, 'connect'],
    [dns, 'lookup'],
    [globalThis, 'fetch'],
  ];
  const saved = targets.map(([m, k]) => m[k]);
  const attempts: string[] = [];
  for (const [m, k] of targets)
    m[k] = (...args: unknown[]) => {
      attempts.push(`${k}(${JSON.stringify(args[0])})`);
      throw new Error(`network access attempted: ${k}`);
    };
  try {
    const cfg = makeConfig('tiny', {
      steps: 3,
      batchSize: 8,
      world: { trainScenes: 300, valScenes: 64, testScenes: 64 },
      eval: { queryPerClass: 2, shots: [1], episodes: 1 },
    });
    const run = runExperiment(cfg, { outDir: tmp(), quiet: true });
    assert.equal(run.final.step, 3);
    disposeParams(run.model.params);
    // tensor counts are checked in checkpoint.test.ts (eval.ts recallAt leaks topk values)
  } finally {
    targets.forEach(([m, k], i) => {
      m[k] = saved[i];
    });
  }
  assert.deepEqual(attempts, []);
});
