/**
 * Where a lab training step spends its time: one step under `tf.profile`, the
 * kernel times summed by kernel name (forward and backward kernels alike, as
 * the backend runs them), plus what no kernel accounts for (JS, tape, tidy).
 */
import * as tf from '@tensorflow/tfjs';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';
import type { Batch } from '../lib/data/types';
import type { Model } from '../lib/model/index';
import { type AdamState, adamwStep, lrAt, type OptimConfig } from '../lib/optim';
import { lossAndGrads } from '../lib/train';

export interface KernelShare {
  kernel: string;
  calls: number;
  ms: number;
  share: number; // of the step's wall time
}

export interface StepProfile {
  wallMs: number;
  kernelMs: number;
  top: KernelShare[];
}

/** One lab training step as trainLoop runs it; returns the loss (synced). */
export function labStep(
  model: Model,
  batch: Batch,
  adam: AdamState,
  step: number,
  total: number,
  optim: OptimConfig,
): number {
  const { loss, grads } = lossAndGrads(model, batch);
  const norms = adamwStep(model.params, model.specs, grads, adam, lrAt(step, total, optim), optim);
  const stats = tf.tidy(() => tf.concat([tf.reshape(loss, [1]), norms]));
  const value = stats.dataSync()[0];
  tf.dispose([loss, norms, stats, ...Object.values(grads)]);
  return value;
}

/** Profiles `run` (one step) and returns the `topN` kernels by total time. */
export async function profileStep(run: () => void, topN = 10): Promise<StepProfile> {
  const t0 = performance.now();
  const info = await tf.profile(() => {
    run();
    return tf.scalar(0);
  });
  const wallMs = performance.now() - t0;
  tf.dispose(info.result as tf.Tensor);
  const byName = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    // customGrad's forward pass is profiled as a scope around kernels listed on their own.
    if (k.name === 'unnamed scope') continue;
    const e = byName.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += Number(k.kernelTimeMs);
    byName.set(k.name, e);
  }
  const all = [...byName.entries()].map(([kernel, e]) => ({
    kernel,
    calls: e.calls,
    ms: e.ms,
    share: e.ms / wallMs,
  }));
  all.sort((p, q) => q.ms - p.ms);
  const kernelMs = all.reduce((s, k) => s + k.ms, 0);
  return { wallMs, kernelMs, top: all.slice(0, topN) };
}

export function formatProfile(p: StepProfile): string {
  const rows = p.top.map(
    (k) =>
      `| ${k.kernel} | ${k.calls} | ${k.ms.toFixed(1)} | ${(100 * k.share).toFixed(1)}% | ${((100 * k.ms) / p.kernelMs).toFixed(1)}% |`,
  );
  const other = p.wallMs - p.kernelMs;
  return [
    '| kernel | calls | ms | share of step | share of kernel time |',
    '|---|---|---|---|---|',
    ...rows,
    `| (outside kernels: JS, tape, allocation) | | ${other.toFixed(1)} | ${((100 * other) / p.wallMs).toFixed(1)}% | |`,
    `| **step (profiled)** | | ${p.wallMs.toFixed(1)} | 100% | |`,
  ].join('\n');
}

export interface RowOpsAB {
  rounds: number;
  off: { ms: number; cpuMs: number }; // native matmuls and leading-axis Sum only
  on: { ms: number; cpuMs: number }; // all native kernels
}

/**
 * Before/after of the native row kernels on one model, in one process: steps
 * alternate between LAB_NATIVE_ROWOPS=0 (native matmuls and leading-axis Sum,
 * as before them) and all native kernels, re-registering in between; medians
 * of wall and CPU time.
 */
export function rowOpsAB(step: (i: number) => void, rounds: number, threads: number): RowOpsAB {
  const saved = process.env.LAB_NATIVE_ROWOPS;
  const times = { off: [[], []] as number[][], on: [[], []] as number[][] };
  const use = (rowOps: boolean) => {
    restoreStockKernels();
    process.env.LAB_NATIVE_ROWOPS = rowOps ? '1' : '0';
    registerNativeKernels(threads);
  };
  try {
    for (let r = -1; r < rounds; r++) {
      for (const key of r % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        use(key === 'on');
        const [t0, c0] = [performance.now(), process.cpuUsage()];
        step(r);
        const c = process.cpuUsage(c0);
        if (r < 0) continue; // warm-up
        times[key][0].push(performance.now() - t0);
        times[key][1].push((c.user + c.system) / 1000);
      }
    }
  } finally {
    if (saved === undefined) delete process.env.LAB_NATIVE_ROWOPS;
    else process.env.LAB_NATIVE_ROWOPS = saved;
    use(process.env.LAB_NATIVE_ROWOPS !== '0');
  }
  const med = ([ms, cpu]: number[][]) => ({ ms: median(ms), cpuMs: median(cpu) });
  return { rounds, off: med(times.off), on: med(times.on) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
