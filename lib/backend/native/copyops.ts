/**
 * Native data-movement kernels for the wasm backend: Transpose, Slice, SplitV
 * and Concat, all one strided copy in C (copyops.h), and a zero-copy Identity
 * and same-dtype Cast. The stock wasm versions
 * copy a non-contiguous slice row by row from JS and transpose element by
 * element in output order; in a lab-preset training step the q/k/v SplitV
 * alone took longer than all the matmuls (bench/README.md has the profile).
 *
 * float32 only (other dtypes fall back to the stock kernel). Gradients need
 * nothing here: TF.js differentiates these through each other (Slice ↔ Pad,
 * SplitV ↔ Concat, Transpose ↔ Transpose).
 */
import * as tf from '@tensorflow/tfjs';
import { offsetOf, type WasmBackend } from './rowops';

/** The addon function used here; offsets and strides are in floats. */
export interface CopyAddon {
  copyStrided(heap: Float32Array, rank: number, src: number, dst: number, ...sizes: number[]): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** What a copy kernel gets besides the kernel arguments. */
export interface CopyContext {
  addon: CopyAddon;
  /** runs the stock wasm kernel on the same arguments */
  fallback: () => tf.TensorInfo | tf.TensorInfo[];
}

export type CopyKernel = (args: KernelArgs, ctx: CopyContext) => tf.TensorInfo | tf.TensorInfo[];

/** The addon's rank limit (COPY_MAX_RANK); larger ranks fall back. */
const MAX_RANK = 8;

/** Row-major strides of `shape`, in elements. */
export function rowMajorStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** One strided view of the heap: a float offset and a stride per dim. */
interface View {
  offset: number;
  strides: number[];
}

/** Copies `shape` elements from view `src` to view `dst`, both inside the wasm heap. */
function copy(ctx: CopyContext, backend: WasmBackend, shape: number[], src: View, dst: View): void {
  if (tf.util.sizeFromShape(shape) === 0) return;
  const rank = Math.max(shape.length, 1);
  const pad = (xs: number[], fill: number) => (xs.length ? xs : [fill]);
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  ctx.addon.copyStrided(
    backend.wasm.HEAPF32,
    rank,
    src.offset,
    dst.offset,
    ...pad(shape, 1),
    ...pad(src.strides, 1),
    ...pad(dst.strides, 1),
  );
}

/** A whole tensor as a contiguous view starting `skip` floats in. */
function dense(backend: WasmBackend, t: tf.TensorInfo, skip = 0): View {
  return { offset: offsetOf(backend, t) + skip, strides: rowMajorStrides(t.shape) };
}

/** out[i_0..] = x[i_perm(0)..]: the output walks x with permuted strides. */
const transpose: CopyKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { perm } = args.attrs as { perm: number[] };
  if (x.dtype !== 'float32' || x.shape.length > MAX_RANK) return ctx.fallback();
  const backend = args.backend as WasmBackend;
  const outShape = perm.map((p) => x.shape[p]);
  const out = backend.makeOutput(outShape, 'float32');
  const xs = rowMajorStrides(x.shape);
  const src = { offset: offsetOf(backend, x), strides: perm.map((p) => xs[p]) };
  copy(ctx, backend, outShape, src, dense(backend, out));
  return out;
};

/** The block of x at `begin` of size `size` into a new contiguous tensor. */
function sliceInto(
  ctx: CopyContext,
  backend: WasmBackend,
  x: tf.TensorInfo,
  begin: number[],
  size: number[],
): tf.TensorInfo {
  const out = backend.makeOutput(size, 'float32');
  const xs = rowMajorStrides(x.shape);
  const start = begin.reduce((acc, b, d) => acc + b * xs[d], 0);
  copy(ctx, backend, size, dense(backend, x, start), dense(backend, out));
  return out;
}

const slice: CopyKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const attrs = args.attrs as { begin: number | number[]; size: number | number[] };
  if (x.dtype !== 'float32' || x.shape.length > MAX_RANK) return ctx.fallback();
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  tf.slice_util.assertParamsValid(x as tf.Tensor, begin, size);
  return sliceInto(ctx, args.backend as WasmBackend, x, begin, size);
};

const splitV: CopyKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const attrs = args.attrs as { numOrSizeSplits: number | number[]; axis: number };
  if (x.dtype !== 'float32' || x.shape.length > MAX_RANK) return ctx.fallback();
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
  const backend = args.backend as WasmBackend;
  const begin = x.shape.map(() => 0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const out = sliceInto(ctx, backend, x, begin, size);
    begin[axis] += s;
    return out;
  });
};

/** Each input is written into its block of the output (the output's strides, shifted along `axis`). */
const concat: CopyKernel = (args, ctx) => {
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const { axis: axisAttr } = args.attrs as { axis: number };
  const rank = inputs[0].shape.length;
  if (inputs.some((t) => t.dtype !== 'float32') || rank > MAX_RANK) return ctx.fallback();
  const axis = tf.util.parseAxisParam(axisAttr, inputs[0].shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, axis);
  const outShape = tf.backend_util.computeOutShape(shapes, axis);
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(outShape, 'float32');
  const os = rowMajorStrides(outShape);
  let at = 0;
  for (const t of inputs) {
    const dst = { offset: offsetOf(backend, out) + at * os[axis], strides: os };
    copy(ctx, backend, t.shape, dense(backend, t), dst);
    at += t.shape[axis];
  }
  return out;
};

/**
 * Identity shares the input's buffer (one more reference) instead of copying
 * it, as the cpu backend and the wasm Reshape do; TF.js tensors are immutable,
 * so nothing can observe the sharing. The engine runs Identity for every
 * tensor a custom gradient saves for the backward pass (ops.ts), ~290 copies
 * per lab-preset step.
 */
const identity: CopyKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return ctx.fallback();
  (args.backend as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * Cast to the dtype the tensor already has shares the buffer too; the stock
 * wasm Cast copies. TF.js's Multiply gradient casts its other operand every
 * time (16 full-tensor copies per lab-preset step). Real conversions fall back.
 */
const cast: CopyKernel = (args, ctx) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
  if (x.dtype !== dtype || dtype === 'string') return ctx.fallback();
  (args.backend as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype };
};

/** The kernels this file replaces, by TF.js kernel name. */
export const COPY_KERNELS: Record<string, CopyKernel> = {
  Identity: identity,
  Cast: cast,
  Transpose: transpose,
  Slice: slice,
  SplitV: splitV,
  Concat: concat,
};
