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
 * Between parallel regions OpenMP's workers spin briefly, then sleep: the lab
 * sets GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set.
 * Measured on this 2-core VM (a `lab` SigLIP step at 2 threads; two processes
 * at 2 threads each on the 2 cores): libgomp's default spin (300 000) and
 * 100 000 spins took 402 and 710 ms per step when two processes overlap,
 * 10 000 spins 190 ms, 1000 spins 124–133 ms, OMP_WAIT_POLICY=passive 128–134
 * ms (~110 ms at 1 thread each); alone, passive waiting cost ~15% at 2 threads
 * in one run (76–85 vs 60–68 ms spinning), noise in others.
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

/** Whether the lab set GOMP_SPINCOUNT itself (children that are not lab processes should not inherit it). */
let spinSet = false;

/**
 * Sets GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set,
 * before the addon (and the OpenMP runtime, which reads it once when it loads) is loaded.
 */
export function boundOpenMpSpin(): void {
  if (process.env.OMP_WAIT_POLICY !== undefined || process.env.GOMP_SPINCOUNT !== undefined) return;
  process.env.GOMP_SPINCOUNT = '1000';
  spinSet = true;
}

/** The environment without what `boundOpenMpSpin` added: for children that are not lab processes (PyTorch). */
export function withoutLabOpenMpEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  if (spinSet) delete out.GOMP_SPINCOUNT;
  return out;
}
