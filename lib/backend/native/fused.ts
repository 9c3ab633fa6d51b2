/**
 * The lab's own fused kernels (lib/backend/kernels.ts) for the wasm backend,
 * computed by the addon (fusedops.h, attention.h, llipops.h, lixpops.h,
 * denseops.h, lossops.h) on the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import {
  ADAMW,
  ADAMW_MULTI,
  type AdamWAttrs,
  type AdamWMultiAttrs,
  ATTENTION,
  ATTENTION_GRAD,
  ATTENTION_POOL,
  ATTENTION_POOL_GRAD,
  BLOCK_GRAD_INPUTS,
  BLOCK_INPUTS,
  type BlockAttrs,
  type BlockInput,
  L2_NORMALIZE,
  L2_NORMALIZE_GRAD,
  LAB_BLOCK,
  LAB_BLOCK_GRAD,
  LAB_DENSE,
  LAB_DENSE_GRAD,
  LAB_EMBED,
  LAB_EMBED_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
  LIXP_CONTEXT,
  LIXP_CONTEXT_GRAD,
  type LixpContextAttrs,
  LLIP_MIX,
  LLIP_MIX_GRAD,
  QUICK_GELU,
  QUICK_GELU_GRAD,
  ROW_ENTROPY,
  SIGMOID_PAIR_LOSS,
  SIGMOID_PAIR_LOSS_GRAD,
} from '../kernels';
import { offsetOf, type WasmBackend } from './rowops';

/** The addon function used here; offsets are in floats. */
export interface FusedAddon {
  adamw(heap: Float32Array, n: number, ...offsetsThenHyper: number[]): void;
  /** table: rows [n, p, g, m, v, p', m', v', weightDecay] (rest rows: n, p); then norms, lr … clip */
  adamwMulti(
    heap: Float32Array,
    table: Float64Array,
    count: number,
    rest: number,
    norms: number,
    ...hyper: number[]
  ): void;
  quickGelu(heap: Float32Array, x: number, y: number, n: number): void;
  quickGeluGrad(heap: Float32Array, dy: number, x: number, dx: number, n: number): void;
  layerNorm(heap: Float32Array, ...offsetsRowsColsEps: number[]): void;
  layerNormGrad(heap: Float32Array, ...offsetsRowsCols: number[]): void;
  attention(heap: Float32Array, ...offsetsSizesScale: number[]): void;
  attentionGrad(heap: Float32Array, ...offsetsSizesScale: number[]): void;
  attentionPool(heap: Float32Array, ...offsetsSizesScale: number[]): void;
  attentionPoolGrad(heap: Float32Array, ...offsetsSizesScale: number[]): void;
  /** (heap, ids, table, out, n, V, D); ids int32 */
  embed(heap: Float32Array, ...offsetsSizes: number[]): void;
  /** (heap, ids, dy, dtable, n, V, D) */
  embedGrad(heap: Float32Array, ...offsetsSizes: number[]): void;
  llipMix(heap: Float32Array, ...offsetsSizesTau: number[]): void;
  llipMixGrad(heap: Float32Array, ...offsetsSizesTau: number[]): void;
  rowEntropy(heap: Float32Array, x: number, rows: number, cols: number, out: number): void;
  lixpContext(heap: Float32Array, ...offsetsSizesFlags: number[]): void;
  lixpContextGrad(heap: Float32Array, ...offsetsSizes: number[]): void;
  dense(heap: Float32Array, ...offsetsSizes: number[]): void;
  denseGrad(heap: Float32Array, ...offsetsSizes: number[]): void;
  /** sizes: [B, T, H, dh, hidden, eps, scale] */
  block(heap: Float32Array, offsets: Float64Array, sizes: Float64Array): void;
  blockGrad(heap: Float32Array, offsets: Float64Array, sizes: Float64Array): void;
  /** floats of the saved buffer / of the backward pass's scratch */
  blockSaved(sizes: Float64Array): number;
  blockGradScratch(sizes: Float64Array): number;
  /** (heap, cos, logScale, bias, loss, B) */
  sigmoidPairLoss(heap: Float32Array, ...offsetsSize: number[]): void;
  /** (heap, dy, cos, logScale, bias, dcos, dlogScale, dbias, B) */
  sigmoidPairLossGrad(heap: Float32Array, ...offsetsSize: number[]): void;
  l2Normalize(
    heap: Float32Array,
    x: number,
    y: number,
    r: number,
    rows: number,
    cols: number,
  ): void;
  l2NormalizeGrad(
    heap: Float32Array,
    dy: number,
    y: number,
    r: number,
    dx: number,
    rows: number,
    cols: number,
  ): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

export type FusedKernel = (args: KernelArgs, addon: FusedAddon) => tf.TensorInfo[];

function mustFloat(name: string, ts: tf.TensorInfo[]): void {
  if (ts.some((t) => t.dtype !== 'float32')) throw new Error(`${name}: float32 tensors only`);
}

/** Allocates outputs (shapes), then calls `fn` with the heap and every float offset, inputs first. */
function run(
  backend: WasmBackend,
  inputs: tf.TensorInfo[],
  shapes: number[][],
  fn: (heap: Float32Array, offsets: number[]) => void,
): tf.TensorInfo[] {
  const outs = shapes.map((s) => backend.makeOutput(s, 'float32'));
  const offsets = [...inputs, ...outs].map((t) => offsetOf(backend, t));
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  fn(backend.wasm.HEAPF32, offsets);
  return outs;
}

const adamw: FusedKernel = (args, addon) => {
  const { param, grad, m, v, scale } = args.inputs as Record<
    'param' | 'grad' | 'm' | 'v' | 'scale',
    tf.TensorInfo
  >;
  const a = args.attrs as unknown as AdamWAttrs;
  mustFloat(ADAMW, [param, grad, m, v, scale]);
  const n = tf.util.sizeFromShape(param.shape);
  if ([grad, m, v].some((t) => tf.util.sizeFromShape(t.shape) !== n)) {
    throw new Error(`${ADAMW}: param, grad, m and v must have the same size`);
  }
  if (tf.util.sizeFromShape(scale.shape) !== 1)
    throw new Error(`${ADAMW}: scale must be one element`);
  const shapes = [param.shape, param.shape, param.shape, [2]];
  const hyper = [a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.bc1, a.bc2];
  return run(args.backend as WasmBackend, [param, grad, m, v, scale], shapes, (heap, offsets) =>
    addon.adamw(heap, n, ...offsets, ...hyper),
  );
};

/** Columns of adamwMulti's table: n, p, g, m, v, p', m', v', weightDecay. */
const MULTI_COLS = 9;

const adamwMulti: FusedKernel = (args, addon) => {
  const a = args.attrs as unknown as AdamWMultiAttrs;
  const ins = args.inputs as Record<string, tf.TensorInfo>;
  const count = a.weightDecay.length;
  const slots = Array.from({ length: count }, (_, i) =>
    ['p', 'g', 'm', 'v'].map((k) => ins[k + i]),
  );
  const rest = Array.from({ length: a.rest }, (_, j) => ins[`r${j}`]);
  mustFloat(ADAMW_MULTI, [...slots.flat(), ...rest]);
  const sizes = slots.map(([p, ...others], i) => {
    const n = tf.util.sizeFromShape(p.shape);
    if (others.some((t) => tf.util.sizeFromShape(t.shape) !== n))
      throw new Error(`${ADAMW_MULTI}: p, g, m and v of slot ${i} differ in size`);
    return n;
  });
  const backend = args.backend as WasmBackend;
  const outs = slots.flatMap(([p]) => [0, 1, 2].map(() => backend.makeOutput(p.shape, 'float32')));
  const norms = backend.makeOutput([3], 'float32');
  const off = (t: tf.TensorInfo) => offsetOf(backend, t);
  const table = new Float64Array((count + a.rest) * MULTI_COLS);
  slots.forEach((slot, i) => {
    const row = [
      sizes[i],
      ...slot.map(off),
      ...outs.slice(3 * i, 3 * i + 3).map(off),
      a.weightDecay[i],
    ];
    table.set(row, i * MULTI_COLS);
  });
  rest.forEach((r, j) => {
    table.set([tf.util.sizeFromShape(r.shape), off(r)], (count + j) * MULTI_COLS);
  });
  const hyper = [a.lr, a.beta1, a.beta2, a.eps, a.bc1, a.bc2, a.gradClip];
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  addon.adamwMulti(backend.wasm.HEAPF32, table, count, a.rest, off(norms), ...hyper);
  return [...outs, norms];
};

const quickGelu: FusedKernel = (args, addon) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  mustFloat(QUICK_GELU, [x]);
  const n = tf.util.sizeFromShape(x.shape);
  return run(args.backend as WasmBackend, [x], [x.shape], (heap, [xo, yo]) =>
    addon.quickGelu(heap, xo, yo, n),
  );
};

const quickGeluGrad: FusedKernel = (args, addon) => {
  const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
  mustFloat(QUICK_GELU_GRAD, [dy, x]);
  const n = tf.util.sizeFromShape(x.shape);
  if (tf.util.sizeFromShape(dy.shape) !== n)
    throw new Error(`${QUICK_GELU_GRAD}: dy and x differ in size`);
  return run(args.backend as WasmBackend, [dy, x], [x.shape], (heap, [d, xo, dx]) =>
    addon.quickGeluGrad(heap, d, xo, dx, n),
  );
};

/** [rows, cols] of a 2-D activation, checking a per-column vector against it. */
function rowsCols(name: string, x: tf.TensorInfo, ...cols: tf.TensorInfo[]): [number, number] {
  if (x.shape.length !== 2) throw new Error(`${name}: expected a 2-D input, got [${x.shape}]`);
  const [r, c] = x.shape;
  for (const v of cols) {
    if (tf.util.sizeFromShape(v.shape) !== c)
      throw new Error(`${name}: [${v.shape}] does not match ${c} columns`);
  }
  return [r, c];
}

const layerNorm: FusedKernel = (args, addon) => {
  const { x, gamma, beta } = args.inputs as Record<'x' | 'gamma' | 'beta', tf.TensorInfo>;
  const { eps } = args.attrs as { eps: number };
  mustFloat(LAYER_NORM, [x, gamma, beta]);
  const [rows, cols] = rowsCols(LAYER_NORM, x, gamma, beta);
  return run(
    args.backend as WasmBackend,
    [x, gamma, beta],
    [x.shape, x.shape, [rows, 1]],
    (heap, o) => addon.layerNorm(heap, ...o, rows, cols, eps),
  );
};

const layerNormGrad: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<'dy' | 'xhat' | 'rstd' | 'gamma', tf.TensorInfo>;
  const { dy, xhat, rstd, gamma } = ins;
  mustFloat(LAYER_NORM_GRAD, [dy, xhat, rstd, gamma]);
  const [rows, cols] = rowsCols(LAYER_NORM_GRAD, xhat, gamma);
  if (
    tf.util.sizeFromShape(dy.shape) !== rows * cols ||
    tf.util.sizeFromShape(rstd.shape) !== rows
  ) {
    throw new Error(`${LAYER_NORM_GRAD}: dy or rstd does not match xhat [${xhat.shape}]`);
  }
  const shapes = [xhat.shape, gamma.shape, gamma.shape];
  return run(args.backend as WasmBackend, [dy, xhat, rstd, gamma], shapes, (heap, o) =>
    addon.layerNormGrad(heap, ...o, rows, cols),
  );
};

interface AttentionAttrs {
  batch: number;
  heads: number;
  scale: number;
}

/** [B, T, H, dh] of an attention call on qkv [B·T, 3D], checked. */
function attentionSizes(name: string, qkv: tf.TensorInfo, a: AttentionAttrs): number[] {
  const [rows, cols] = qkv.shape;
  const { batch: B, heads: H } = a;
  if (qkv.shape.length !== 2 || cols % (3 * H) !== 0 || B < 1 || rows % B !== 0) {
    throw new Error(`${name}: qkv [${qkv.shape}] is not [B·T, 3·heads·dh] for B ${B}, ${H} heads`);
  }
  return [B, rows / B, H, cols / (3 * H)];
}

const attention: FusedKernel = (args, addon) => {
  const { qkv, mask } = args.inputs as { qkv: tf.TensorInfo; mask?: tf.TensorInfo };
  const a = args.attrs as unknown as AttentionAttrs;
  mustFloat(ATTENTION, mask ? [qkv, mask] : [qkv]);
  const [B, T, H, dh] = attentionSizes(ATTENTION, qkv, a);
  if (mask && (mask.shape.length !== 2 || mask.shape[0] !== T || mask.shape[1] !== T))
    throw new Error(`${ATTENTION}: mask [${mask.shape}] is not [${T}, ${T}]`);
  const ins = mask ? [qkv, mask] : [qkv];
  const shapes = [
    [B * T, H * dh],
    [B * H, T, T],
  ];
  return run(args.backend as WasmBackend, ins, shapes, (heap, o) => {
    const [x, m, out, probs] = mask ? o : [o[0], -1, o[1], o[2]];
    addon.attention(heap, x, m, out, probs, B, T, H, dh, a.scale);
  });
};

const attentionGrad: FusedKernel = (args, addon) => {
  const { dy, qkv, probs } = args.inputs as Record<'dy' | 'qkv' | 'probs', tf.TensorInfo>;
  const a = args.attrs as unknown as AttentionAttrs;
  mustFloat(ATTENTION_GRAD, [dy, qkv, probs]);
  const [B, T, H, dh] = attentionSizes(ATTENTION_GRAD, qkv, a);
  if (
    tf.util.sizeFromShape(dy.shape) !== B * T * H * dh ||
    tf.util.sizeFromShape(probs.shape) !== B * H * T * T
  ) {
    throw new Error(`${ATTENTION_GRAD}: dy or probs does not match qkv [${qkv.shape}]`);
  }
  return run(args.backend as WasmBackend, [dy, qkv, probs], [qkv.shape], (heap, o) =>
    addon.attentionGrad(heap, ...o, B, T, H, dh, a.scale),
  );
};

/** [B, T, H, dh] of an attention pooling call on kv [B·T, 2D] and q [1, D], checked. */
function poolSizes(name: string, kv: tf.TensorInfo, q: tf.TensorInfo, a: AttentionAttrs): number[] {
  const [rows, cols] = kv.shape;
  const { batch: B, heads: H } = a;
  const D = cols / 2;
  if (
    kv.shape.length !== 2 ||
    cols % (2 * H) !== 0 ||
    B < 1 ||
    rows % B !== 0 ||
    tf.util.sizeFromShape(q.shape) !== D
  ) {
    throw new Error(
      `${name}: kv [${kv.shape}] and q [${q.shape}] are not [B·T, 2·heads·dh] and [1, heads·dh] for B ${B}, ${H} heads`,
    );
  }
  return [B, rows / B, H, D / H];
}

const attentionPool: FusedKernel = (args, addon) => {
  const { kv, q } = args.inputs as Record<'kv' | 'q', tf.TensorInfo>;
  const a = args.attrs as unknown as AttentionAttrs;
  mustFloat(ATTENTION_POOL, [kv, q]);
  const [B, T, H, dh] = poolSizes(ATTENTION_POOL, kv, q, a);
  const shapes = [
    [B, H * dh],
    [B, H, T],
  ];
  return run(args.backend as WasmBackend, [kv, q], shapes, (heap, o) =>
    addon.attentionPool(heap, ...o, B, T, H, dh, a.scale),
  );
};

const attentionPoolGrad: FusedKernel = (args, addon) => {
  const { dy, kv, q, att } = args.inputs as Record<'dy' | 'kv' | 'q' | 'att', tf.TensorInfo>;
  const a = args.attrs as unknown as AttentionAttrs;
  mustFloat(ATTENTION_POOL_GRAD, [dy, kv, q, att]);
  const [B, T, H, dh] = poolSizes(ATTENTION_POOL_GRAD, kv, q, a);
  if (
    tf.util.sizeFromShape(dy.shape) !== B * H * dh ||
    tf.util.sizeFromShape(att.shape) !== B * H * T
  ) {
    throw new Error(`${ATTENTION_POOL_GRAD}: dy or att does not match kv [${kv.shape}]`);
  }
  return run(args.backend as WasmBackend, [dy, kv, q, att], [kv.shape, q.shape], (heap, o) =>
    addon.attentionPoolGrad(heap, ...o, B, T, H, dh, a.scale),
  );
};

/** [n, V, D] of an embedding call, checked: ids int32 [n], table [V, D], rows [n, D]. */
function embedSizes(name: string, ids: tf.TensorInfo, rows: tf.TensorInfo, V: number): number[] {
  const D = rows.shape[rows.shape.length - 1];
  const n = tf.util.sizeFromShape(ids.shape);
  if (ids.dtype !== 'int32' || ids.shape.length !== 1 || rows.shape.length !== 2 || !(V >= 0)) {
    throw new Error(
      `${name}: expected int32 ids [n] and a 2-D float32 tensor, got ${ids.dtype} [${ids.shape}], [${rows.shape}]`,
    );
  }
  return [n, V, D];
}

const embedKernel: FusedKernel = (args, addon) => {
  const { ids, table } = args.inputs as Record<'ids' | 'table', tf.TensorInfo>;
  mustFloat(LAB_EMBED, [table]);
  const [n, V, D] = embedSizes(LAB_EMBED, ids, table, table.shape[0]);
  return run(args.backend as WasmBackend, [ids, table], [[n, D]], (heap, o) =>
    addon.embed(heap, ...o, n, V, D),
  );
};

const embedGrad: FusedKernel = (args, addon) => {
  const { dy, ids } = args.inputs as Record<'dy' | 'ids', tf.TensorInfo>;
  const { vocab } = args.attrs as { vocab: number };
  mustFloat(LAB_EMBED_GRAD, [dy]);
  const [n, V, D] = embedSizes(LAB_EMBED_GRAD, ids, dy, vocab);
  if (dy.shape[0] !== n)
    throw new Error(`${LAB_EMBED_GRAD}: dy [${dy.shape}] does not match ${n} ids`);
  return run(args.backend as WasmBackend, [ids, dy], [[V, D]], (heap, o) =>
    addon.embedGrad(heap, ...o, n, V, D),
  );
};

interface LlipAttrs {
  heads: number;
  tau: number;
}

/** [T, B, Bt, M, dh] of a Llip mixing call, checked. */
function llipSizes(
  name: string,
  keys: tf.TensorInfo,
  values: tf.TensorInfo,
  q: tf.TensorInfo,
  a: LlipAttrs,
): number[] {
  const [T, B, E] = keys.shape;
  const ok =
    keys.shape.length === 3 &&
    values.shape.join() === keys.shape.join() &&
    q.shape.length === 2 &&
    q.shape[1] === E &&
    a.heads >= 1 &&
    E % a.heads === 0 &&
    a.tau > 0;
  if (!ok) {
    throw new Error(
      `${name}: keys [${keys.shape}], values [${values.shape}], q [${q.shape}] are not [T, B, E], [T, B, E], [Bt, E] for ${a.heads} heads`,
    );
  }
  return [T, B, q.shape[0], a.heads, E / a.heads];
}

const llipMix: FusedKernel = (args, addon) => {
  const { keys, values, q } = args.inputs as Record<'keys' | 'values' | 'q', tf.TensorInfo>;
  const a = args.attrs as unknown as LlipAttrs;
  mustFloat(LLIP_MIX, [keys, values, q]);
  const [T, B, Bt, M, dh] = llipSizes(LLIP_MIX, keys, values, q, a);
  const shapes = [
    [B, Bt, M * dh],
    [M, Bt, B, T],
  ];
  return run(args.backend as WasmBackend, [keys, values, q], shapes, (heap, o) =>
    addon.llipMix(heap, ...o, T, B, Bt, M, dh, a.tau),
  );
};

const llipMixGrad: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<'dy' | 'keys' | 'values' | 'q' | 'phi', tf.TensorInfo>;
  const { dy, keys, values, q, phi } = ins;
  const a = args.attrs as unknown as LlipAttrs;
  mustFloat(LLIP_MIX_GRAD, [dy, keys, values, q, phi]);
  const [T, B, Bt, M, dh] = llipSizes(LLIP_MIX_GRAD, keys, values, q, a);
  if (
    tf.util.sizeFromShape(dy.shape) !== B * Bt * M * dh ||
    tf.util.sizeFromShape(phi.shape) !== M * Bt * B * T
  ) {
    throw new Error(`${LLIP_MIX_GRAD}: dy [${dy.shape}] or phi [${phi.shape}] does not match`);
  }
  const shapes = [keys.shape, keys.shape, q.shape];
  return run(args.backend as WasmBackend, [dy, keys, values, q, phi], shapes, (heap, o) =>
    addon.llipMixGrad(heap, ...o, T, B, Bt, M, dh, a.tau),
  );
};

const rowEntropy: FusedKernel = (args, addon) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  mustFloat(ROW_ENTROPY, [x]);
  if (x.shape.length < 1) throw new Error(`${ROW_ENTROPY}: x must have at least one axis`);
  const cols = x.shape[x.shape.length - 1];
  const outShape = x.shape.slice(0, -1);
  const rows = tf.util.sizeFromShape(outShape);
  return run(args.backend as WasmBackend, [x], [outShape], (heap, [xo, out]) =>
    addon.rowEntropy(heap, xo, rows, cols, out),
  );
};

/** [B, S, D] of a LIxP context call, checked. */
function lixpSizes(name: string, x: tf.TensorInfo, scale: tf.TensorInfo, stale?: tf.TensorInfo) {
  const [B, D] = x.shape;
  const S = stale ? stale.shape[0] : 0;
  const ok =
    x.shape.length === 2 &&
    tf.util.sizeFromShape(scale.shape) === 1 &&
    (!stale || (stale.shape.length === 2 && stale.shape[1] === D));
  if (!ok) {
    const st = stale ? `, stale [${stale.shape}]` : '';
    throw new Error(
      `${name}: x [${x.shape}], scale [${scale.shape}]${st} are not [B, D], [], [S, D]`,
    );
  }
  return [B, S, D];
}

const lixpContext: FusedKernel = (args, addon) => {
  const { x, scale, stale, fill } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const a = args.attrs as unknown as LixpContextAttrs;
  const [B, S, D] = lixpSizes(LIXP_CONTEXT, x!, scale!, stale);
  const ins = S > 0 ? [x!, scale!, stale!, fill!] : [x!, scale!];
  mustFloat(LIXP_CONTEXT, ins);
  if (S > 0 && (!fill || tf.util.sizeFromShape(fill.shape) !== 1))
    throw new Error(`${LIXP_CONTEXT}: stale rows need a one-element fill`);
  const M = B + S;
  const shapes = [[B, D], [B, M], [M, D], [M]];
  return run(args.backend as WasmBackend, ins, shapes, (heap, o) => {
    const [xo, so, st, fo, ...outs] = S > 0 ? o : [o[0], o[1], -1, -1, ...o.slice(2)];
    const flags = [+a.maskSelf, +a.separate, a.block];
    addon.lixpContext(heap, xo, st, so, fo, ...outs, B, S, D, ...flags);
  });
};

const lixpContextGrad: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { dy, dAttention, x, scale, attention, k, rn, stale } = ins;
  const needed = [dy, dAttention, x, scale, attention, k, rn] as tf.TensorInfo[];
  const [B, S, D] = lixpSizes(LIXP_CONTEXT_GRAD, x!, scale!, stale);
  const order = S > 0 ? [...needed, stale!] : needed;
  mustFloat(LIXP_CONTEXT_GRAD, order);
  const M = B + S;
  const want = [B * D, B * M, B * D, 1, B * M, M * D, M];
  if (needed.some((t, i) => tf.util.sizeFromShape(t.shape) !== want[i]))
    throw new Error(
      `${LIXP_CONTEXT_GRAD}: dy, dAttention, attention, k or rn does not match x [${x!.shape}]`,
    );
  return run(args.backend as WasmBackend, order, [x!.shape, scale!.shape], (heap, o) => {
    const [d, da, xo, , ao, ko, ro] = o;
    const [dx, ds] = o.slice(-2);
    addon.lixpContextGrad(heap, d, da, xo, S > 0 ? o[7] : -1, ao, ko, ro, o[3], dx, ds, B, S, D);
  });
};

/** [N, Din, Dout] of a dense call on x [N, Din], w [Din, Dout], checked. */
function denseSizes(name: string, x: tf.TensorInfo, w: tf.TensorInfo): number[] {
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[0])
    throw new Error(`${name}: x [${x.shape}], w [${w.shape}] are not [N, Din], [Din, Dout]`);
  return [x.shape[0], x.shape[1], w.shape[1]];
}

const dense: FusedKernel = (args, addon) => {
  const { x, w, b } = args.inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b?: tf.TensorInfo };
  const ins = b ? [x, w, b] : [x, w];
  mustFloat(LAB_DENSE, ins);
  const [N, Din, Dout] = denseSizes(LAB_DENSE, x, w);
  if (b && tf.util.sizeFromShape(b.shape) !== Dout)
    throw new Error(`${LAB_DENSE}: b [${b.shape}] does not match ${Dout} columns`);
  return run(args.backend as WasmBackend, ins, [[N, Dout]], (heap, o) => {
    const [xo, wo, bo, yo] = b ? o : [o[0], o[1], -1, o[2]];
    addon.dense(heap, xo, wo, bo, yo, N, Din, Dout);
  });
};

const denseGrad: FusedKernel = (args, addon) => {
  const { dy, x, w } = args.inputs as Record<'dy' | 'x' | 'w', tf.TensorInfo>;
  const { bias } = args.attrs as { bias: boolean };
  mustFloat(LAB_DENSE_GRAD, [dy, x, w]);
  const [N, Din, Dout] = denseSizes(LAB_DENSE_GRAD, x, w);
  if (tf.util.sizeFromShape(dy.shape) !== N * Dout)
    throw new Error(`${LAB_DENSE_GRAD}: dy [${dy.shape}] is not [${N}, ${Dout}]`);
  const shapes = [x.shape, w.shape, ...(bias ? [[Dout]] : [])];
  return run(args.backend as WasmBackend, [dy, x, w], shapes, (heap, o) => {
    const [d, xo, wo, dx, dw, db] = bias ? o : [...o, -1];
    addon.denseGrad(heap, d, xo, wo, dx, dw, db, N, Din, Dout);
  });
};

/** Each block parameter's shape at width D and MLP width `hidden`. */
function blockParamShapes(D: number, hidden: number): Record<BlockInput, number[]> {
  return {
    ln1g: [D],
    ln1b: [D],
    wqkv: [D, 3 * D],
    bqkv: [3 * D],
    wproj: [D, D],
    bproj: [D],
    ln2g: [D],
    ln2b: [D],
    w1: [D, hidden],
    b1: [hidden],
    w2: [hidden, D],
    b2: [D],
  };
}

/** `names`' inputs, throwing naming them all when one is missing. */
function blockInputs(
  name: string,
  ins: Record<string, tf.TensorInfo>,
  names: readonly BlockInput[],
) {
  const ts = names.map((k) => ins[k]);
  if (ts.some((t) => t === undefined)) throw new Error(`${name}: needs ${names.join(', ')}`);
  return ts;
}

/** [B, T, H, dh, hidden, eps, scale] of a block on x [B·T, D] with w1 [D, hidden], every parameter given checked. */
function blockSizes(
  name: string,
  x: tf.TensorInfo,
  p: Record<string, tf.TensorInfo>,
  a: BlockAttrs,
): Float64Array {
  const { batch: B, heads: H } = a;
  if (x.shape.length !== 2 || B < 1 || x.shape[0] % B !== 0 || x.shape[1] % H !== 0)
    throw new Error(`${name}: x [${x.shape}] is not [B·T, heads·dh] for B ${B}, ${H} heads`);
  const D = x.shape[1];
  const hidden = p.w1?.shape[1] ?? 0;
  const want = blockParamShapes(D, hidden);
  for (const k of BLOCK_INPUTS) {
    const t = p[k];
    if (t === undefined) continue; // the gradient takes only some
    if (t.shape.join() !== want[k].join())
      throw new Error(`${name}: ${k} [${t.shape}] is not [${want[k]}]`);
  }
  return Float64Array.from([B, x.shape[0] / B, H, D / H, hidden, a.eps, a.scale]);
}

/**
 * Allocates outputs (shapes) and `scratch` floats of heap scratch, calls `fn`
 * with the heap and the offsets of inputs (-1 for a missing one), outputs and
 * scratch as the addon's table, frees the scratch; returns the outputs.
 */
function runTable(
  backend: WasmBackend,
  inputs: (tf.TensorInfo | undefined)[],
  shapes: number[][],
  scratch: number,
  fn: (heap: Float32Array, offsets: Float64Array) => void,
): tf.TensorInfo[] {
  const outs = shapes.map((s) => backend.makeOutput(s, 'float32'));
  const tmp = backend.makeOutput([scratch], 'float32');
  const ts = [...inputs, ...outs, tmp];
  const offsets = Float64Array.from(ts.map((t) => (t ? offsetOf(backend, t) : -1)));
  // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
  fn(backend.wasm.HEAPF32, offsets);
  backend.disposeData(tmp.dataId);
  return outs;
}

const block: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<string, tf.TensorInfo>;
  const { x, mask } = ins;
  const a = args.attrs as unknown as BlockAttrs;
  const params = blockInputs(LAB_BLOCK, ins, BLOCK_INPUTS);
  mustFloat(LAB_BLOCK, [x, ...params, ...(mask ? [mask] : [])]);
  const sizes = blockSizes(LAB_BLOCK, x, ins, a);
  const T = sizes[1];
  if (mask && (mask.shape.length !== 2 || mask.shape[0] !== T || mask.shape[1] !== T))
    throw new Error(`${LAB_BLOCK}: mask [${mask.shape}] is not [${T}, ${T}]`);
  const shapes = [x.shape, [addon.blockSaved(sizes)]]; // out, saved
  const scratch = tf.util.sizeFromShape(x.shape); // [N, D]: the attention's and the MLP's output before their residual add
  return runTable(args.backend as WasmBackend, [x, mask, ...params], shapes, scratch, (heap, o) =>
    addon.block(heap, o, sizes),
  );
};

const blockGrad: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<string, tf.TensorInfo>;
  const { dy, saved } = ins;
  const a = args.attrs as unknown as BlockAttrs;
  const params = blockInputs(LAB_BLOCK_GRAD, ins, BLOCK_GRAD_INPUTS);
  mustFloat(LAB_BLOCK_GRAD, [dy, saved, ...params]);
  const sizes = blockSizes(LAB_BLOCK_GRAD, dy, ins, a);
  if (tf.util.sizeFromShape(saved.shape) !== addon.blockSaved(sizes))
    throw new Error(`${LAB_BLOCK_GRAD}: saved [${saved.shape}] is not this block's`);
  const want = blockParamShapes(sizes[2] * sizes[3], sizes[4]);
  const shapes = [dy.shape, ...BLOCK_INPUTS.map((k) => want[k])]; // dx, then each parameter's gradient
  const scratch = addon.blockGradScratch(sizes);
  return runTable(args.backend as WasmBackend, [dy, saved, ...params], shapes, scratch, (heap, o) =>
    addon.blockGrad(heap, o, sizes),
  );
};

/** Throws unless `t` holds one element (a scalar). */
function mustScalar(name: string, what: string, t: tf.TensorInfo): void {
  if (tf.util.sizeFromShape(t.shape) !== 1)
    throw new Error(`${name}: ${what} [${t.shape}] is not one element`);
}

/** B of a pair-loss call on cos [B, B], checked (B >= 1). */
function pairSize(name: string, cos: tf.TensorInfo): number {
  const [B, B2] = cos.shape;
  if (cos.shape.length !== 2 || B !== B2 || B < 1)
    throw new Error(`${name}: cos [${cos.shape}] is not [B, B] with B >= 1`);
  return B;
}

const sigmoidPairLoss: FusedKernel = (args, addon) => {
  const { cos, logScale, bias } = args.inputs as Record<'cos' | 'logScale' | 'bias', tf.TensorInfo>;
  mustFloat(SIGMOID_PAIR_LOSS, [cos, logScale, bias]);
  const B = pairSize(SIGMOID_PAIR_LOSS, cos);
  mustScalar(SIGMOID_PAIR_LOSS, 'logScale', logScale);
  mustScalar(SIGMOID_PAIR_LOSS, 'bias', bias);
  return run(args.backend as WasmBackend, [cos, logScale, bias], [[]], (heap, o) =>
    addon.sigmoidPairLoss(heap, ...o, B),
  );
};

const sigmoidPairLossGrad: FusedKernel = (args, addon) => {
  const ins = args.inputs as Record<'dy' | 'cos' | 'logScale' | 'bias', tf.TensorInfo>;
  const { dy, cos, logScale, bias } = ins;
  mustFloat(SIGMOID_PAIR_LOSS_GRAD, [dy, cos, logScale, bias]);
  const B = pairSize(SIGMOID_PAIR_LOSS_GRAD, cos);
  mustScalar(SIGMOID_PAIR_LOSS_GRAD, 'dy', dy);
  mustScalar(SIGMOID_PAIR_LOSS_GRAD, 'logScale', logScale);
  mustScalar(SIGMOID_PAIR_LOSS_GRAD, 'bias', bias);
  const shapes = [cos.shape, logScale.shape, bias.shape];
  return run(args.backend as WasmBackend, [dy, cos, logScale, bias], shapes, (heap, o) =>
    addon.sigmoidPairLossGrad(heap, ...o, B),
  );
};

/** [rows, cols] of x taken as rows over its last axis (a rank-0 x is one row of one). */
function lastAxisRows(x: tf.TensorInfo): [number, number] {
  const cols = x.shape.length ? x.shape[x.shape.length - 1] : 1;
  return [tf.util.sizeFromShape(x.shape.slice(0, -1)), cols];
}

const l2Normalize: FusedKernel = (args, addon) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  mustFloat(L2_NORMALIZE, [x]);
  const [rows, cols] = lastAxisRows(x);
  const rShape = x.shape.length ? [...x.shape.slice(0, -1), 1] : [];
  return run(args.backend as WasmBackend, [x], [x.shape, rShape], (heap, [xo, yo, ro]) =>
    addon.l2Normalize(heap, xo, yo, ro, rows, cols),
  );
};

const l2NormalizeGrad: FusedKernel = (args, addon) => {
  const { dy, y, r } = args.inputs as Record<'dy' | 'y' | 'r', tf.TensorInfo>;
  mustFloat(L2_NORMALIZE_GRAD, [dy, y, r]);
  const [rows, cols] = lastAxisRows(y);
  if (tf.util.sizeFromShape(dy.shape) !== rows * cols || tf.util.sizeFromShape(r.shape) !== rows) {
    throw new Error(
      `${L2_NORMALIZE_GRAD}: dy [${dy.shape}] or r [${r.shape}] does not match y [${y.shape}]`,
    );
  }
  return run(args.backend as WasmBackend, [dy, y, r], [y.shape], (heap, [d, yo, ro, dx]) =>
    addon.l2NormalizeGrad(heap, d, yo, ro, dx, rows, cols),
  );
};

/** The pair loss and L2-normalisation pairs, switched apart for before/after measurements. */
export const LOSS_KERNELS = [
  SIGMOID_PAIR_LOSS,
  SIGMOID_PAIR_LOSS_GRAD,
  L2_NORMALIZE,
  L2_NORMALIZE_GRAD,
];

/** The whole-block pair (lab-blas 16), switched apart for before/after measurements. */
export const BLOCK_KERNELS = [LAB_BLOCK, LAB_BLOCK_GRAD];

/** The dense pair, switched apart for before/after measurements. */
export const DENSE_KERNELS = [LAB_DENSE, LAB_DENSE_GRAD];

/** LIxP's contextualiser pair, switched apart for before/after measurements. */
export const LIXP_KERNELS = [LIXP_CONTEXT, LIXP_CONTEXT_GRAD];

/** Llip's mixing and the entropy of its weights, switched apart for before/after measurements. */
export const LLIP_KERNELS = [LLIP_MIX, LLIP_MIX_GRAD, ROW_ENTROPY];

/** All parameters' AdamW in one call, switched apart (off: one ADAMW call per parameter). */
export const ADAMW_MULTI_KERNELS = [ADAMW_MULTI];

/** The attention pair, switched apart from the rest for before/after measurements. */
export const ATTENTION_KERNELS = [ATTENTION, ATTENTION_GRAD];
/** The attention pooling pair: with the attention switch, added only when the addon has it (lab-blas 15). */
export const POOL_KERNELS = [ATTENTION_POOL, ATTENTION_POOL_GRAD];
/** The embedding pair: added only when the addon has it (lab-blas 15); off with LAB_NATIVE_EMBED=0. */
export const EMBED_KERNELS = [LAB_EMBED, LAB_EMBED_GRAD];

/** The kernels this file adds, by name (none replaces a stock kernel). */
export const FUSED_KERNELS: Record<string, FusedKernel> = {
  [ADAMW]: adamw,
  [ADAMW_MULTI]: adamwMulti,
  [QUICK_GELU]: quickGelu,
  [QUICK_GELU_GRAD]: quickGeluGrad,
  [LAYER_NORM]: layerNorm,
  [LAYER_NORM_GRAD]: layerNormGrad,
  [ATTENTION]: attention,
  [ATTENTION_GRAD]: attentionGrad,
  [ATTENTION_POOL]: attentionPool,
  [ATTENTION_POOL_GRAD]: attentionPoolGrad,
  [LAB_EMBED]: embedKernel,
  [LAB_EMBED_GRAD]: embedGrad,
  [LLIP_MIX]: llipMix,
  [LLIP_MIX_GRAD]: llipMixGrad,
  [ROW_ENTROPY]: rowEntropy,
  [LIXP_CONTEXT]: lixpContext,
  [LIXP_CONTEXT_GRAD]: lixpContextGrad,
  [LAB_DENSE]: dense,
  [LAB_DENSE_GRAD]: denseGrad,
  [LAB_BLOCK]: block,
  [LAB_BLOCK_GRAD]: blockGrad,
  [SIGMOID_PAIR_LOSS]: sigmoidPairLoss,
  [SIGMOID_PAIR_LOSS_GRAD]: sigmoidPairLossGrad,
  [L2_NORMALIZE]: l2Normalize,
  [L2_NORMALIZE_GRAD]: l2NormalizeGrad,
};
