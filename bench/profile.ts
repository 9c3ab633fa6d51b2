/**
 * Where a lab training step spends its time: one step under `tf.profile`, the
 * kernel times summed by kernel name (forward and backward kernels alike, as
 * the backend runs them), plus what no kernel accounts for (JS, tape, tidy).
 */
import * as tf from '@tensorflow/tfjs';
import {
  type KernelOptions,
  registerNativeKernels,
  restoreStockKernels,
} from '../lib/backend/native';
import type { Batch } from '../lib/data/types';
import type { Model } from '../lib/objectives/model';
import type { AdamState, OptimConfig } from '../lib/train/optim';
import { trainStep } from '../lib/train/step';

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

/** One lab training step, the trainer's own; returns the loss. */
export function labStep(
  model: Model,
  batch: Batch,
  adam: AdamState,
  step: number,
  total: number,
  optim: OptimConfig,
): number {
  return trainStep(model, { steps: total, optim, nextBatch: () => batch }, step, adam).loss;
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

/** One set of kernels a step can run with, and how to switch to it. */
interface KernelSet {
  name: string;
  options: KernelOptions; // for registerNativeKernels
  native: boolean; // false: stock wasm kernels only
}

/**
 * The sets compared: stock wasm; the native set of the previous round of work
 * (OpenBLAS sgemm, leading/trailing Sum, Sigmoid, Softmax); all native kernels
 * but the fused attention, Llip mixing, dense layers and SigLIP loss /
 * l2normalize (the round before those); all native kernels but the
 * whole-block kernel (each block op by op); all native kernels now (oneDNN sgemm,
 * data movement, fused AdamW / quick GELU / layer norm / multi-head attention /
 * Llip mixing / dense layers / SigLIP loss / l2normalize, whole transformer blocks).
 */
export const KERNEL_SETS: KernelSet[] = [
  { name: 'stock wasm', options: {}, native: false },
  {
    name: 'OpenBLAS matmuls + Sum/Sigmoid/Softmax',
    options: { gemm: 'openblas', rowOps: true, copy: false, fused: false },
    native: true,
  },
  {
    name: 'native kernels, op-by-op attention, Llip mixing, dense layers and SigLIP loss',
    options: {
      gemm: 'dnnl',
      rowOps: true,
      copy: true,
      fused: true,
      attention: false,
      llip: false,
      dense: false,
      loss: false,
    },
    native: true,
  },
  {
    name: 'all native kernels, op-by-op transformer blocks',
    options: { gemm: 'dnnl', rowOps: true, copy: true, fused: true, block: false },
    native: true,
  },
  {
    name: 'all native kernels (oneDNN matmuls, whole-block kernel)',
    options: { gemm: 'dnnl', rowOps: true, copy: true, fused: true },
    native: true,
  },
];

export interface KernelSetsAB {
  model: string;
  rounds: number;
  sets: { name: string; ms: number; cpuMs: number }[];
}

/**
 * Before/after in one process: the same step alternating between the kernel
 * sets round by round (rotating who goes first), after one warm-up round;
 * medians of wall and CPU time. Registers the environment's choice again afterwards.
 */
export function kernelSetsAB(
  model: string,
  step: (i: number) => void,
  rounds: number,
  threads: number,
): KernelSetsAB {
  const use = (set: KernelSet | null) => {
    restoreStockKernels();
    if (!set || set.native) registerNativeKernels(threads, set?.options);
  };
  const times = KERNEL_SETS.map(() => ({ ms: [] as number[], cpu: [] as number[] }));
  try {
    for (let r = -1; r < rounds; r++) {
      for (let j = 0; j < KERNEL_SETS.length; j++) {
        const k = (j + Math.max(r, 0)) % KERNEL_SETS.length;
        use(KERNEL_SETS[k]);
        const [t0, c0] = [performance.now(), process.cpuUsage()];
        step(r);
        const c = process.cpuUsage(c0);
        if (r < 0) continue; // warm-up
        times[k].ms.push(performance.now() - t0);
        times[k].cpu.push((c.user + c.system) / 1000);
      }
    }
  } finally {
    use(null);
  }
  const sets = KERNEL_SETS.map((s, k) => ({
    name: s.name,
    ms: median(times[k].ms),
    cpuMs: median(times[k].cpu),
  }));
  return { model, rounds, sets };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The TF.js engine internals `peakTensorBytes` wraps (tfjs-core 4.x engine.js). */
interface EngineInternals {
  state: { tensorInfo: WeakMap<object, { backend: unknown; bytes: number }> };
  trackTensor: (a: { dataId: object }, backend: unknown) => void;
  removeDataId: (dataId: object, backend: unknown) => void;
}

/**
 * Peak bytes of tensor buffers created while `run` runs and alive at once,
 * above those that existed before (the engine keeps no list of these: add the
 * weights and optimizer state yourself). Each buffer counted once: a reshape
 * shares its input's buffer (`tf.profile`'s peakBytes counts every tensor,
 * views included, so it overstates). Scratch memory inside kernels is not seen.
 */
export function peakTensorBytes(run: () => void): number {
  const e = tf.engine() as unknown as EngineInternals;
  const [track, remove] = [e.trackTensor, e.removeDataId];
  let live = 0;
  let peak = 0;
  e.trackTensor = function (a, backend) {
    const fresh = !e.state.tensorInfo.has(a.dataId);
    track.call(this, a, backend);
    if (fresh) live += e.state.tensorInfo.get(a.dataId)?.bytes ?? 0;
    peak = Math.max(peak, live);
  };
  e.removeDataId = function (dataId, backend) {
    const info = e.state.tensorInfo.get(dataId);
    if (info && info.backend === backend) live -= info.bytes;
    remove.call(this, dataId, backend);
  };
  try {
    run();
  } finally {
    e.trackTensor = track;
    e.removeDataId = remove;
  }
  return peak;
}
