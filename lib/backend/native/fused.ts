/**
 * The lab's own fused kernels (lib/backend/kernels.ts) for the wasm backend,
 * computed by the addon (fusedops.h) on the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAMW, type AdamWAttrs } from '../kernels';
import { offsetOf, type WasmBackend } from './rowops';

/** The addon function used here; offsets are in floats. */
export interface FusedAddon {
  adamw(heap: Float32Array, n: number, ...offsetsThenHyper: number[]): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

export type FusedKernel = (args: KernelArgs, addon: FusedAddon) => tf.TensorInfo[];

const adamw: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<'param' | 'grad' | 'm' | 'v' | 'scale', tf.TensorInfo>;
  const a = args.attrs as unknown as AdamWAttrs;
  const { param, grad, m, v, scale } = ins;
  const all = [param, grad, m, v, scale];
  if (all.some((t) => t.dtype !== 'float32')) throw new Error(`${ADAMW}: float32 tensors only`);
  const n = tf.util.sizeFromShape(param.shape);
  if ([grad, m, v].some((t) => tf.util.sizeFromShape(t.shape) !== n)) {
    throw new Error(`${ADAMW}: param, grad, m and v must have the same size`);
  }
  if (tf.util.sizeFromShape(scale.shape) !== 1)
    throw new Error(`${ADAMW}: scale must be one element`);
  const backend = args.backend as WasmBackend;
  const outs = [
    backend.makeOutput(param.shape, 'float32'),
    backend.makeOutput(param.shape, 'float32'),
    backend.makeOutput(param.shape, 'float32'),
    backend.makeOutput([2], 'float32'),
  ];
  const offsets = [...all, ...outs].map((t) => offsetOf(backend, t));
  const hyper = [a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.bc1, a.bc2];
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  addon.adamw(backend.wasm.HEAPF32, n, ...offsets, ...hyper);
  return outs;
};

/** The kernels this file adds, by name (none replaces a stock kernel). */
export const FUSED_KERNELS: Record<string, FusedKernel> = {
  [ADAMW]: adamw,
};
