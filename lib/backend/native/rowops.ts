/**
 * Native Sigmoid, Softmax, Sum and same-shape Add kernels for the wasm backend (C side:
 * rowops.h, built into the same addon as the matmuls). After the matmuls went
 * to OpenBLAS these were the largest stock kernels of a training step: wasm's
 * Sigmoid and Softmax call a scalar expf, and its Sum transposes the tensor
 * whenever the reduced axes are not the innermost ones.
 *
 * Each kernel handles float32 and falls back to the stock one otherwise.
 * Gradients need nothing here: TF.js differentiates Sigmoid and Softmax from
 * their outputs with Mul/Sub/Sum, which run through these kernels again.
 */
import * as tf from '@tensorflow/tfjs';

/** The addon functions used here; offsets and sizes are in floats. */
export interface RowAddon {
  sumRows(heap: Float32Array, x: number, rows: number, cols: number, out: number): void;
  sumCols(heap: Float32Array, x: number, rows: number, cols: number, out: number): void;
  sigmoid(heap: Float32Array, x: number, rows: number, cols: number, out: number): void;
  softmaxRows(heap: Float32Array, x: number, rows: number, cols: number, out: number): void;
  /** absent in addons before lab-blas 15 */
  addSame?(heap: Float32Array, a: number, b: number, n: number, out: number): void;
}

/** The parts of the wasm backend object we rely on (it has no public types). */
export interface WasmBackend {
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
  incRef(dataId: tf.DataId): void;
  wasm: { HEAPF32: Float32Array };
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** What a row kernel gets besides the kernel arguments. */
export interface RowContext {
  addon: RowAddon;
  /** false: Sum over trailing axes falls back to stock (LAB_NATIVE_ROWOPS=0) */
  trailingSum: boolean;
  /** runs the stock wasm kernel on the same arguments */
  fallback: () => tf.TensorInfo;
}

export type RowKernel = (args: KernelArgs, ctx: RowContext) => tf.TensorInfo;

/** Float offset of a tensor on the wasm heap. */
export function offsetOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset / 4;
}

type RowFn = (heap: Float32Array, x: number, rows: number, cols: number, out: number) => void;

/** Allocates `outShape` and runs `fn` on x viewed as [rows, cols]. */
function runRows(
  backend: WasmBackend,
  x: tf.TensorInfo,
  outShape: number[],
  rows: number,
  fn: RowFn,
): tf.TensorInfo {
  const out = backend.makeOutput(outShape, 'float32');
  const size = tf.util.sizeFromShape(x.shape);
  if (size === 0 || rows === 0) return out;
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  fn(backend.wasm.HEAPF32, offsetOf(backend, x), rows, size / rows, offsetOf(backend, out));
  return out;
}

const sigmoid: RowKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype !== 'float32') return ctx.fallback();
  return runRows(args.backend as WasmBackend, x, x.shape, 1, ctx.addon.sigmoid);
};

/** Softmax over the last axis (the only one tf.softmax accepts). */
const softmax: RowKernel = (args, ctx) => {
  const { logits } = args.inputs as { logits: tf.TensorInfo };
  const { dim } = args.attrs as { dim: number };
  const rank = logits.shape.length;
  const last = rank > 0 && (dim === -1 || dim === rank - 1);
  if (!last || logits.dtype !== 'float32') return ctx.fallback();
  const rows = tf.util.sizeFromShape(logits.shape.slice(0, -1));
  return runRows(args.backend as WasmBackend, logits, logits.shape, rows, ctx.addon.softmaxRows);
};

/**
 * Sum over leading axes (bias gradients: a column sum) or trailing axes (row
 * sums: softmax and layer-norm gradients); other axis sets fall back.
 */
const sum: RowKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  const r = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
  const n = axes.length;
  const leading = n > 0 && n < r && axes.every((ax, i) => ax === i);
  const trailing = ctx.trailingSum && n > 0 && n < r && axes.every((ax, i) => ax === r - n + i);
  if (!(leading || trailing) || x.dtype !== 'float32') return ctx.fallback();
  const kept = leading ? x.shape.slice(n) : x.shape.slice(0, r - n);
  const ones = axes.map(() => 1);
  const outShape = keepDims ? (leading ? [...ones, ...kept] : [...kept, ...ones]) : kept;
  const backend = args.backend as WasmBackend;
  if (leading) {
    const rows = tf.util.sizeFromShape(x.shape.slice(0, n));
    return runRows(backend, x, outShape, rows, ctx.addon.sumRows);
  }
  return runRows(backend, x, outShape, tf.util.sizeFromShape(kept), ctx.addon.sumCols);
};

/**
 * Add of two float32 tensors of one shape (residual connections and the
 * gradients backprop accumulates), split over the threads; any broadcast falls back.
 */
const add: RowKernel = (args, ctx) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  if (!same || a.dtype !== 'float32' || b.dtype !== 'float32' || !ctx.addon.addSame)
    return ctx.fallback();
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(a.shape, 'float32');
  const n = tf.util.sizeFromShape(a.shape);
  if (n === 0) return out;
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  ctx.addon.addSame(
    backend.wasm.HEAPF32,
    offsetOf(backend, a),
    offsetOf(backend, b),
    n,
    offsetOf(backend, out),
  );
  return out;
};

/** The kernels this file replaces, by TF.js kernel name. */
export const ROW_KERNELS: Record<string, RowKernel> = {
  Add: add,
  Sum: sum,
  Sigmoid: sigmoid,
  Softmax: softmax,
};
