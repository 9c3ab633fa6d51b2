/**
 * Issue 19: a sweep worker trusts nothing that comes from the queue. Against a
 * Redis started here on loopback, a worker (in this process, so its spawns can be
 * counted) is sent the issue's traversal job and variants of a valid job with one
 * thing wrong; each must fail for good (one attempt, UnrecoverableError), naming
 * the problem in the failure and in a log line with the job id, with no file
 * created or removed anywhere under the test's folder (nor at the issue's
 * /tmp/x/evilgrid) and no train process spawned. A valid job still runs. The
 * local pool's `executeRun` refuses the same specs; with LAB_QUEUE_SECRET a worker
 * takes only jobs signed with it; a remote Redis without a password is refused.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { type Job, Queue } from 'bullmq';
import { repoRoot } from '../lib/paths';
import {
  type JobResult,
  jobData,
  QUEUE_NAME,
  redisConnection,
  signSpec,
  startWorker,
} from '../lib/runs/queue';
import { executeRun, expandGrid, isPermanent, type RunSpec, SpecError } from '../lib/runs/sweep';
import tinyDemo from '../sweeps/tiny-demo';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-qtrust-'));
const OUT = path.join(TMP, 'sweeps'); // the workers' sweep folder
const EVIL = '/tmp/x/evilgrid'; // where the issue's job wrote
const REDIS = '/usr/bin/redis-server';
const evilExisted = fs.existsSync(EVIL);
const xExisted = fs.existsSync(path.dirname(EVIL));
let redis: ChildProcess | undefined;
let port = 0;

/** Train processes started from this process (the worker's executeRun spawns them here). */
const trainSpawns: string[][] = [];
// biome-ignore lint/suspicious/noExplicitAny: wrapping node's overloaded spawn
const cp = require('node:child_process') as { spawn: (...a: any[]) => ChildProcess };
const realSpawn = cp.spawn;
cp.spawn = (cmd: string, args?: readonly string[], ...rest: unknown[]) => {
  if (args?.some((a) => a.endsWith('train-cli.ts'))) trainSpawns.push([...args]);
  return realSpawn(cmd, args, ...rest);
};

/** Every path under TMP with its size and mtime: a write, a delete or a new folder changes it. */
function tree(dir = TMP): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    const st = fs.statSync(p);
    const line = `${p} ${e.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`;
    return e.isDirectory() ? [line, ...tree(p)] : [line];
  });
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const p = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return p;
}

const haveRedis = fs.existsSync(REDIS);

before(async () => {
  fs.mkdirSync(OUT);
  if (!haveRedis) return;
  port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  redis = realSpawn(REDIS, args, { cwd: TMP, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  redis.stdout?.on('data', (b: Buffer) => {
    text += b;
  });
  await waitFor('redis', () => /Ready to accept connections/.test(text), 20_000);
});

after(() => {
  redis?.kill('SIGKILL');
  if (!process.env.KEEP_QTRUST_TMP) fs.rmSync(TMP, { recursive: true, force: true });
  // only if an unguarded worker wrote there (the old code did): leave /tmp as it was
  if (!evilExisted) fs.rmSync(EVIL, { recursive: true, force: true });
  if (!xExisted) fs.rmSync(path.dirname(EVIL), { recursive: true, force: true });
});

const VALID: RunSpec = expandGrid(tinyDemo)[0];

/** The issue's job, as it was sent, and variants of a valid job with one thing wrong. */
const BAD: [string, unknown, RegExp][] = [
  [
    'issue-attack',
    {
      grid: '../../../../tmp/x/evilgrid',
      id: 'not-a-hash',
      preset: 'tiny',
      seed: 0,
      sets: { steps: 2 },
    },
    /grid: must match .*"\.\.\/\.\.\/\.\.\/\.\.\/tmp\/x\/evilgrid"/,
  ],
  ['traversal', { ...VALID, grid: '../evil' }, /grid: must match .*"\.\.\/evil"/],
  ['absolute-grid', { ...VALID, grid: '/tmp/x/evilgrid' }, /grid: must match/],
  [
    'wrong-id',
    { ...VALID, id: 'aaaaaaaaaaaa' },
    new RegExp(`id 'aaaaaaaaaaaa' is not its config's id \\(the config hashes to ${VALID.id}\\)`),
  ],
  ['not-an-id', { ...VALID, id: '../../x' }, /id: must be 12 hex digits, got "\.\.\/\.\.\/x"/],
  ['unknown-preset', { ...VALID, preset: 'huge' }, /preset: unknown preset "huge"/],
  ['proto-preset', { ...VALID, preset: '__proto__' }, /preset: unknown preset "__proto__"/],
  [
    'bad-set-key',
    { ...VALID, sets: { ...VALID.sets, 'optim.lrr': 1 } },
    /config: optim\.lrr: unknown key \(did you mean 'lr'\?\)/,
  ],
  [
    'bad-set-value',
    { ...VALID, sets: { ...VALID.sets, steps: -1 } },
    /config: steps: must be >= 1, got -1/,
  ],
  [
    'proto-set-key',
    { ...VALID, sets: { ...VALID.sets, '__proto__.steps': 2 } },
    /sets: "__proto__\.steps" is not a dotted config key/,
  ],
  ['extra-field', { ...VALID, cmd: 'rm -rf ~' }, /unexpected key "cmd"/],
  ['path-field', { ...VALID, out: '/tmp/x' }, /unexpected key "out"/],
  [
    'axes-not-sets',
    { ...VALID, axes: { steps: 99 } },
    /axes: "steps" is not one of the run's sets/,
  ],
  ['not-an-object', 'rm -rf ~', /job: must be an object, got "rm -rf ~"/],
];

/** Adds jobs with 3 attempts: one that is retried shows up as 'delayed', not 'failed'. */
async function enqueue(queue: Queue, jobs: [string, unknown][]): Promise<void> {
  for (const [id, data] of jobs)
    await queue.add('x', data, {
      jobId: id,
      attempts: 3,
      backoff: { type: 'fixed', delay: 60_000 },
    });
}

/** The job once it left the waiting/active states. */
async function settled(queue: Queue, id: string, ms = 60_000): Promise<Job> {
  let job: Job | undefined;
  await waitFor(
    `job ${id}`,
    async () => {
      job = await queue.getJob(id);
      const state = await job?.getState();
      return state === 'completed' || state === 'failed' || state === 'delayed';
    },
    ms,
  );
  // fetched again: the copy read before getState may predate the completion (no returnvalue yet)
  return ((await queue.getJob(id)) ?? job) as Job;
}

/** A worker on `db` of the test's Redis, logging into `lines`, and a queue to feed it. */
function pair(db: number, secret?: string) {
  const url = `redis://127.0.0.1:${port}/${db}`;
  const lines: string[] = [];
  const worker = startWorker(url, { out: OUT, lockMs: 5000, log: (l) => lines.push(l), secret });
  const queue = new Queue(QUEUE_NAME, { connection: redisConnection(url) });
  const close = async () => {
    await worker.close();
    await queue.close();
  };
  return { worker, queue, lines, close };
}

async function assertRejected(queue: Queue, lines: string[], id: string, why: RegExp) {
  const job = await settled(queue, id);
  assert.equal(await job.getState(), 'failed', `${id} should fail for good, not be retried`);
  assert.equal(job.attemptsMade, 1, `${id}: a rejected job is not retried`);
  assert.match(job.failedReason, /^rejected: /, id);
  assert.match(job.failedReason, why, id);
  const line = lines.find((l) => l.startsWith(`reject job "${id}": `));
  assert.ok(line, `no log line names job ${id}:\n${lines.join('\n')}`);
  assert.match(line, why);
}

test('executeRun (the local pool) refuses bad specs before the disk or a process sees them', async () => {
  const before = tree();
  for (const [name, spec, why] of BAD) {
    await assert.rejects(executeRun(OUT, spec as RunSpec), (e) => {
      assert.ok(e instanceof SpecError, `${name}: ${e}`);
      assert.ok(isPermanent(e), `${name}: a refused spec is not worth a retry`);
      assert.match((e as Error).message, why, name);
      return true;
    });
  }
  assert.deepEqual(tree(), before, 'a refused spec changed the sweep folder');
  assert.equal(fs.existsSync(EVIL), evilExisted, `${EVIL} appeared`);
  assert.deepEqual(trainSpawns, [], 'a refused spec spawned the train CLI');
});

test('worker: bad jobs fail for good, logged by job id, nothing written, nothing spawned', {
  skip: !haveRedis && `${REDIS} is absent (apt-get install redis-server)`,
  timeout: 120_000,
}, async () => {
  const { queue, lines, close } = pair(0);
  try {
    const before = tree();
    await enqueue(
      queue,
      BAD.map(([id, data]) => [id, data]),
    );
    for (const [id] of BAD) await settled(queue, id);
    assert.equal(fs.existsSync(EVIL), evilExisted, `${EVIL} appeared`);
    assert.equal(fs.existsSync(path.join(TMP, 'evil')), false, 'a folder appeared beside OUT');
    assert.deepEqual(tree(), before, 'a rejected job changed the tree under the test folder');
    assert.deepEqual(trainSpawns, [], 'a rejected job spawned the train CLI');
    for (const [id, , why] of BAD) await assertRejected(queue, lines, id, why);
  } finally {
    await close();
  }
});

test('worker: a valid job still runs, with the validated spec', {
  skip: !haveRedis && `${REDIS} is absent`,
  timeout: 180_000,
}, async () => {
  const { queue, lines, close } = pair(0);
  try {
    await enqueue(queue, [['valid', VALID]]);
    const job = await settled(queue, 'valid', 150_000);
    assert.equal(await job.getState(), 'completed', `${job.failedReason}\n${lines.join('\n')}`);
    const res = job.returnvalue as JobResult;
    assert.equal(res.meta.id, VALID.id);
    assert.ok(res.rows.some((r) => r.metric === 'loss' && r.run === VALID.id));
    const sweepJson = path.join(OUT, 'tiny-demo', VALID.id, 'sweep.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(sweepJson, 'utf8')).spec, VALID);
    assert.equal(trainSpawns.length, 1, 'one train process for one run');
    const sets = trainSpawns[0].filter((a) => a.startsWith('--set='));
    assert.ok(sets.includes('--set=eval.shots=[1]'), sets.join(' '));
  } finally {
    await close();
  }
});

test('LAB_QUEUE_SECRET: a worker with it takes only jobs signed with it', {
  skip: !haveRedis && `${REDIS} is absent`,
  timeout: 60_000,
}, async () => {
  const secret = 'correct horse battery staple';
  const { queue, lines, close } = pair(1, secret);
  try {
    const before = tree();
    const signed = jobData(VALID, secret);
    const forged = { ...VALID, sig: signSpec(VALID, 'another secret') };
    const altered = { ...signed, seed: 1 }; // a signed job edited in Redis
    const attack = { ...(BAD[0][1] as object), sig: signSpec(VALID, secret) };
    await enqueue(queue, [
      ['unsigned', VALID],
      ['forged', forged],
      ['altered', altered],
      ['attack', attack],
      ['signed', signed],
    ]);
    await assertRejected(queue, lines, 'unsigned', /job is unsigned/);
    await assertRejected(queue, lines, 'forged', /signature does not match/);
    await assertRejected(queue, lines, 'altered', /signature does not match/);
    await assertRejected(queue, lines, 'attack', /signature does not match/);
    // the run is finished in OUT (previous test), so the signed job reads it back
    const job = await settled(queue, 'signed');
    assert.equal(await job.getState(), 'completed', `${job.failedReason}\n${lines.join('\n')}`);
    assert.equal((job.returnvalue as JobResult).meta.id, VALID.id);
    assert.deepEqual(tree(), before);
    assert.equal(trainSpawns.length, 1, 'no train process for a rejected or finished job');
  } finally {
    await close();
  }
});

test('a remote Redis without a password is refused unless --insecure', async () => {
  const remote = 'redis://192.0.2.7:6379';
  assert.throws(() => redisConnection(remote), /refusing redis at 192\.0\.2\.7 without a password/);
  assert.throws(() => startWorker(remote, { out: OUT }), /without a password/);
  assert.equal(redisConnection(remote, { insecure: true }).host, '192.0.2.7');
  const auth = redisConnection('redis://lab:p%40ss@192.0.2.7:6380/2');
  assert.deepEqual(
    [auth.username, auth.password, auth.port, auth.db, auth.tls],
    ['lab', 'p@ss', 6380, 2, undefined],
  );
  assert.ok(redisConnection('rediss://:pw@redis.example.org').tls, 'rediss:// is TLS');
  for (const local of ['redis://127.0.0.1:1', 'redis://localhost', 'redis://[::1]:6379'])
    assert.doesNotThrow(() => redisConnection(local), local);
  // the worker command says so and exits 2, before connecting to anything
  const child = realSpawn(
    process.execPath,
    ['--import', 'tsx', 'scripts/worker.ts', '--queue', remote, '--out', OUT],
    { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stderr?.on('data', (b: Buffer) => {
    text += b;
  });
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 2, text);
  assert.match(text, /worker: refusing redis at 192\.0\.2\.7 without a password/);
});
