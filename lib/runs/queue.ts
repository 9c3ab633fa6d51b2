/**
 * A grid on many machines through BullMQ on Redis: `enqueueGrid` adds one job per
 * unfinished run (job id = grid + run id, so re-enqueueing is a no-op) and files
 * each job's result rows into the grid's table as jobs complete; `startWorker`
 * on any machine pulls jobs and trains them with the same `executeRun` as the
 * local pool. Retries (attempts + exponential backoff) and the recovery of jobs
 * whose worker died (stalled-job detection: the lock of a dead worker expires)
 * are BullMQ's, not ours. Results travel back as the job's return value, so the
 * machines need no shared disk; only the enqueuing process writes the table.
 *
 * A job is untrusted data: anyone who can write to the Redis can add one. The
 * worker checks each before touching its disk or spawning (`openJob`: the HMAC
 * signature when LAB_QUEUE_SECRET is set, then `validateSpec`), fails a bad one
 * for good (UnrecoverableError, logged with the job id), and both ends refuse a
 * remote Redis without a password unless told `insecure`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Job, Queue, type RedisOptions, UnrecoverableError, Worker } from 'bullmq';
import { appendResults, loadResults, RESULTS_DIR, type Row, runRows } from './results';
import {
  executeRun,
  expandGrid,
  type Grid,
  isComplete,
  isPermanent,
  newSummary,
  progressLine,
  type RunMeta,
  type RunSpec,
  readMeta,
  runDir,
  type SweepSummary,
  stableJson,
  validateSpec,
} from './sweep';

/** One queue for every grid: workers need not know which grids exist. */
export const QUEUE_NAME = 'lab-sweeps';

/** localhost, 127.0.0.0/8 or ::1: a Redis only this machine (or an SSH tunnel) reaches. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * `redis[s]://[[user]:password@]host:port[/db]` → the connection BullMQ wants
 * (`rediss://` is TLS, checked against the system CAs or NODE_EXTRA_CA_CERTS).
 * A non-loopback Redis without a password is refused unless `insecure`: whoever
 * reaches that port could queue runs on every worker and read every result.
 */
export function redisConnection(url: string, o: { insecure?: boolean } = {}): RedisOptions {
  // BullMQ 6 made ioredis an optional peer: without it, workers retry forever in silence.
  try {
    require.resolve('ioredis');
  } catch {
    throw new Error("the queue needs the 'ioredis' package next to bullmq (npm install ioredis)");
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue expects redis://host:port, got ${url}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue expects redis://host:port (or rediss:// for TLS), got ${url}`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  if (!password && !isLoopback(host) && !o.insecure)
    throw new Error(
      `refusing redis at ${host} without a password: anyone who reaches it can queue runs and ` +
        'read results (use redis://:<password>@host:port with redis-server --requirepass, ' +
        'or an SSH tunnel to 127.0.0.1; --insecure to override)',
    );
  return {
    host,
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? { servername: host } : undefined,
    maxRetriesPerRequest: null, // BullMQ workers block on Redis; ioredis must not give up
  };
}

/** The shared secret that signs jobs (LAB_QUEUE_SECRET); unset or empty: jobs go unsigned. */
const envSecret = () => process.env.LAB_QUEUE_SECRET || undefined;

/** HMAC-SHA256 of a job's data (keys sorted), hex: what `sig` carries. */
export function signSpec(spec: RunSpec, secret: string): string {
  return createHmac('sha256', secret).update(stableJson(spec)).digest('hex');
}

/** What goes on the queue for a run: the spec, plus `sig` when there is a secret. */
export function jobData(spec: RunSpec, secret = envSecret()): RunSpec & { sig?: string } {
  return secret ? { ...spec, sig: signSpec(spec, secret) } : spec;
}

/**
 * A job's data as a spec this worker may run, or an Error saying why not: with a
 * secret, a `sig` must be present and match the rest of the data; then the data
 * must pass `validateSpec` (shape, grid name, config gate, id).
 */
export function openJob(data: unknown, secret?: string): RunSpec {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return validateSpec(data);
  const { sig, ...rest } = data as Record<string, unknown>;
  if (secret) {
    if (typeof sig !== 'string')
      throw new Error('job is unsigned (this worker has a queue secret)');
    const want = Buffer.from(createHmac('sha256', secret).update(stableJson(rest)).digest('hex'));
    const got = Buffer.from(sig);
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw new Error('job signature does not match its data (forged, altered or another secret)');
  } else if (sig !== undefined && typeof sig !== 'string')
    throw new Error('job: sig must be a string');
  return validateSpec(rest);
}

/** What a worker hands back for one run. */
export interface JobResult {
  meta: RunMeta;
  rows: Row[];
}

export interface EnqueueOptions {
  resultsDir?: string;
  /** signs each job (default: LAB_QUEUE_SECRET) */
  secret?: string;
  /** allow a remote Redis without a password */
  insecure?: boolean;
  attempts?: number; // per run, counting the first
  backoffMs?: number; // first retry delay; doubles each retry
  pollMs?: number;
  log?: (line: string) => void;
}

const jobId = (spec: RunSpec) => `${spec.grid}.${spec.id}`; // BullMQ rejects all-digit ids

/** Adds the runs not yet in the table; a job left failed by an earlier sweep is retried. */
async function addJobs(queue: Queue, specs: RunSpec[], o: EnqueueOptions): Promise<void> {
  for (const spec of specs) {
    const old = await queue.getJob(jobId(spec));
    if (old && (await old.getState()) === 'failed') {
      await old.retry('failed');
      continue;
    }
    await queue.add(spec.grid, jobData(spec, o.secret ?? envSecret()), {
      jobId: jobId(spec),
      attempts: o.attempts ?? 3,
      backoff: { type: 'exponential', delay: o.backoffMs ?? 2000 },
    });
  }
}

/**
 * Enqueues a grid and waits until every job completed or failed for good, filing
 * results as they come. Safe to rerun: finished runs are skipped, jobs in flight
 * are awaited, jobs completed while nobody waited are collected.
 */
export async function enqueueGrid(
  grid: Grid,
  url: string,
  o: EnqueueOptions = {},
): Promise<SweepSummary> {
  const say = o.log ?? ((l: string) => console.log(l));
  const dir = o.resultsDir ?? RESULTS_DIR;
  const all = expandGrid(grid);
  const have = new Set((loadResults(grid.name, dir)?.array('run') as string[] | undefined) ?? []);
  const skipped = all.filter((s) => have.has(s.id)).map((s) => s.id);
  const pending = all.filter((s) => !have.has(s.id));
  const queue = new Queue(QUEUE_NAME, { connection: redisConnection(url, o) });
  const sum = newSummary(all.length, skipped);
  try {
    await addJobs(queue, pending, o);
    say(
      `[sweep ${grid.name}] ${all.length} runs, ${skipped.length} already done, queued on ${url}`,
    );
    let lastLine = '';
    while (pending.length) {
      sum.running = await collect(queue, pending, sum, dir, grid.name);
      const line = progressLine(grid.name, sum);
      const counts = line.replace(/, eta .*/, ''); // a new line only when a count changes
      if (counts !== lastLine) say(line);
      lastLine = counts;
      if (pending.length) await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
    }
  } finally {
    await queue.close();
  }
  sum.seconds = (Date.now() - sum.t0) / 1000;
  return sum;
}

/** One pass over the pending jobs: file the completed, record the failed; returns the active count. */
async function collect(
  queue: Queue,
  pending: RunSpec[],
  sum: SweepSummary,
  dir: string,
  name: string,
) {
  let active = 0;
  for (const spec of [...pending]) {
    const job: Job | undefined = await queue.getJob(jobId(spec));
    if (!job) throw new Error(`job ${jobId(spec)} vanished from the queue (Redis flushed?)`);
    const state = await job.getState();
    if (state === 'active') active++;
    if (state !== 'completed' && state !== 'failed') continue;
    pending.splice(pending.indexOf(spec), 1);
    if (state === 'completed') {
      appendResults(name, (job.returnvalue as JobResult).rows, dir);
      sum.done.push(spec.id);
    } else sum.failed.push({ id: spec.id, error: job.failedReason ?? 'unknown' });
  }
  return active;
}

export interface WorkerOptions {
  out: string; // where this machine keeps its run directories
  /** lock length; a dead worker's job is retried about this long after it died */
  lockMs?: number;
  log?: (line: string) => void;
  /** rejects jobs not signed with it (default: LAB_QUEUE_SECRET) */
  secret?: string;
  /** allow a remote Redis without a password */
  insecure?: boolean;
}

/** A config error or a divergence would fail every retry: tell BullMQ not to retry. */
async function runOrGiveUp(out: string, spec: RunSpec): Promise<RunMeta> {
  try {
    return await executeRun(out, spec);
  } catch (e) {
    throw isPermanent(e) ? new UnrecoverableError((e as Error).message) : e;
  }
}

/** A job id as a log line shows it (quoted and escaped: it came from the queue). */
const idOf = (job?: Job) => JSON.stringify(job?.id ?? null);

/**
 * Trains one job's run (or reads it back if this machine already finished it),
 * after `openJob` accepted it; a refused job fails for good, before anything else.
 */
async function processJob(job: Job<unknown>, o: WorkerOptions): Promise<JobResult> {
  const say = o.log ?? ((l: string) => console.log(l));
  let spec: RunSpec;
  try {
    spec = openJob(job.data, o.secret ?? envSecret());
  } catch (e) {
    const why = (e as Error).message;
    say(`reject job ${idOf(job)}: ${why}`);
    throw new UnrecoverableError(`rejected: ${why}`);
  }
  say(`start ${spec.id} (${spec.grid}, attempt ${job.attemptsMade + 1})`);
  const meta = isComplete(o.out, spec) ? readMeta(o.out, spec) : await runOrGiveUp(o.out, spec);
  await job.log(`${meta.host}: ${spec.id} in ${meta.duration.toFixed(1)} s on ${meta.backend}`);
  say(`done ${spec.id} in ${meta.duration.toFixed(1)} s`);
  return { meta, rows: runRows(spec, runDir(o.out, spec), meta) };
}

/**
 * A worker that trains one run at a time (one run per process keeps memory and
 * cores predictable). `stalledInterval` follows the lock, so a killed worker's
 * job goes back to the queue within about two lock lengths.
 */
export function startWorker(url: string, o: WorkerOptions): Worker<unknown, JobResult> {
  const lockMs = o.lockMs ?? 30_000;
  const worker = new Worker<unknown, JobResult>(QUEUE_NAME, (job) => processJob(job, o), {
    connection: redisConnection(url, o),
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 2,
  });
  const say = o.log ?? ((l: string) => console.log(l));
  worker.on('failed', (job, err) => say(`fail ${idOf(job)}: ${err.message.split('\n')[0]}`));
  worker.on('error', (err) => say(`worker error: ${err.message}`));
  return worker;
}
