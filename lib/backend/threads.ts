/**
 * How many threads a lab process computes with (the native matmuls and the
 * native kernels that split their work, lib/backend/native/*.h).
 *
 * A process alone on the machine uses every core: with the kernels split over
 * threads, a `lab`-preset SigLIP step takes ~70 ms on 2 threads against ~100
 * ms on 1 here (bench/README.md). Runners that start several lab processes at
 * once (the notebook runner's kernels, a sweep's workers) give each its share
 * through LAB_THREADS (`shareCores`), so they never ask for more threads than
 * cores. LAB_THREADS set by hand always wins.
 *
 * OpenMP's workers wait for the next parallel region passively (they sleep
 * instead of spinning) unless OMP_WAIT_POLICY says otherwise: two processes
 * with 2 spinning threads each on 2 cores took 402 ms per `lab` step instead of
 * ~110 (measured), and passive waiting costs a single process nothing we
 * could measure.
 */
import * as os from 'node:os';

/** Cores this process may use. */
export function cores(): number {
  return typeof os.availableParallelism === 'function'
    ? os.availableParallelism()
    : os.cpus().length;
}

/** Threads from LAB_THREADS (a positive integer), else every core; throws on a malformed value. */
export function defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LAB_THREADS;
  if (raw === undefined || raw === '') return cores();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    throw new Error(`LAB_THREADS=${raw}: expected an integer from 1 to 1024`);
  }
  return n;
}

/**
 * The environment for one of `processes` lab processes started together: its
 * share of the cores as LAB_THREADS (at least 1), unless LAB_THREADS is set.
 */
export function shareCores(
  processes: number,
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  if (env.LAB_THREADS) return { ...env };
  const share = Math.max(1, Math.floor(cores() / Math.max(1, processes)));
  return { ...env, LAB_THREADS: String(share) };
}

/** Whether the lab set OMP_WAIT_POLICY itself (children that are not lab processes should not inherit it). */
let waitPolicySet = false;

/**
 * Sets OMP_WAIT_POLICY=passive unless it is set, before the addon (and the
 * OpenMP runtime, which reads it once when it loads) is loaded.
 */
export function preferPassiveWait(): void {
  if (process.env.OMP_WAIT_POLICY !== undefined) return;
  process.env.OMP_WAIT_POLICY = 'passive';
  waitPolicySet = true;
}

/** The environment without what `preferPassiveWait` added: for children that are not lab processes (PyTorch). */
export function withoutLabWaitPolicy(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  if (waitPolicySet) delete out.OMP_WAIT_POLICY;
  return out;
}
