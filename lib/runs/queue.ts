/**
 * A grid on many machines through BullMQ on Redis: `enqueueGrid` adds one job per
 * unfinished run (job id = grid + run id, so re-enqueueing is a no-op) and files
 * each job's result rows into the grid's table as jobs complete; `startWorker`
 * on any machine pulls jobs and trains them with the same `executeRun` as the
 * local pool. Retries (attempts + exponential backoff) and the recovery of jobs
 * whose worker died (stalled-job detection: the lock of a dead worker expires)
 * are BullMQ's, not ours. Results travel back as the job's return value, so the
 * machines need no shared disk; only the enqueuing process writes the table.
 */
import { type ConnectionOptions, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
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
} from './sweep';

/** One queue for every grid: workers need not know which grids exist. */
export const QUEUE_NAME = 'lab-sweeps';

/** `redis://[:password@]host:port[/db]` → the connection BullMQ wants. */
export function redisConnection(url: string): ConnectionOptions {
  // BullMQ 6 made ioredis an optional peer: without it, workers retry forever in silence.
  try {
    require.resolve('ioredis');
  } catch {
    throw new Error("the queue needs the 'ioredis' package next to bullmq (npm install ioredis)");
  }
  const u = new URL(url);
  if (u.protocol !== 'redis:') throw new Error(`--queue expects redis://host:port, got ${url}`);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null, // BullMQ workers block on Redis; ioredis must not give up
  };
}

/** What a worker hands back for one run. */
export interface JobResult {
  meta: RunMeta;
  rows: Row[];
}

export interface EnqueueOptions {
  resultsDir?: string;
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
    await queue.add(spec.grid, spec, {
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
  const queue = new Queue(QUEUE_NAME, { connection: redisConnection(url) });
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
}

/** A config error or a divergence would fail every retry: tell BullMQ not to retry. */
async function runOrGiveUp(out: string, spec: RunSpec): Promise<RunMeta> {
  try {
    return await executeRun(out, spec);
  } catch (e) {
    throw isPermanent(e) ? new UnrecoverableError((e as Error).message) : e;
  }
}

/** Trains one job's run (or reads it back if this machine already finished it). */
async function processJob(job: Job<RunSpec>, o: WorkerOptions): Promise<JobResult> {
  const spec = job.data;
  const say = o.log ?? ((l: string) => console.log(l));
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
export function startWorker(url: string, o: WorkerOptions): Worker<RunSpec, JobResult> {
  const lockMs = o.lockMs ?? 30_000;
  const worker = new Worker<RunSpec, JobResult>(QUEUE_NAME, (job) => processJob(job, o), {
    connection: redisConnection(url),
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 2,
  });
  const say = o.log ?? ((l: string) => console.log(l));
  worker.on('failed', (job, err) => say(`fail ${job?.data.id}: ${err.message.split('\n')[0]}`));
  worker.on('error', (err) => say(`worker error: ${err.message}`));
  return worker;
}
