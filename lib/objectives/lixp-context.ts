/**
 * LIxP's contextualiser (Roth et al., CVPR 2025; the loss is in lixp.ts): each
 * image embedding cross-attends to a memory and comes back as the mixture of
 * the memory's values,
 *
 *   X̂ctx = softmax(M ⊙ X̄ K̄ᵀ / (τctx √d)) V        (queries X̄ and keys K̄: unit rows,
 *                                                 values V: raw rows, M: hidden entries)
 *
 * In the paper's method the memory is the batch itself (K = V = X). Every
 * ablation of the slides that changes what the images attend over, or how, is a
 * switch of `ContextSwitches`; the memory kept across steps (the slides' stale
 * buffer) comes in as `ContextInputs.stale` and is advanced by `pushStale`.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedLixpContext } from '../backend/fused-lixp';
import { hasKernel, LIXP_CONTEXT } from '../backend/kernels';
import { l2normalize, layerNorm, quickGelu, stopGradient } from '../model/ops';
import type { Params } from '../model/params';

/** Where a stop-gradient or a LayerNorm goes: nowhere, the memory's keys, its values or both. */
export const MEMORY_PARTS = ['none', 'keys', 'values', 'both'] as const;
export type MemoryPart = (typeof MEMORY_PARTS)[number];
/** Heads on the values M_V: none, linear D→D, MLPs of 2 or 3 layers (width D, quick GELU). */
export const VALUE_HEADS = ['none', 'linear', 'mlp2', 'mlp3'] as const;
const HEAD_LAYERS = { none: 0, linear: 1, mlp2: 2, mlp3: 3 } as const;

/** How the contextualiser attends (lixp.ts documents each switch at its schema field). */
export interface ContextSwitches {
  maskSelf: boolean;
  qkNorm: boolean;
  stopGrad: MemoryPart;
  memoryNorm: MemoryPart;
  valueHead: (typeof VALUE_HEADS)[number];
  residual: boolean;
  memory: 'images' | 'images+texts';
  context: 'batch' | 'separate';
  /** images attend only inside their block of this many batch rows (0 or absent: the whole batch) */
  activeSubset?: number;
  /** rounds of attention over the same memory (absent: 1) */
  stages?: number;
}

/** Does a MemoryPart switch cover `kind`? */
const has = (w: MemoryPart, kind: 'keys' | 'values') => w === kind || w === 'both';

/** Large negative logit for masked entries (−∞ would give NaN gradients through 0 · ∞). */
const MASKED = -1e9;

/** Past image embeddings kept across steps (the slides' stale buffer), newest first. */
export interface StaleMemory {
  rows: tf.Tensor2D; // [S, D] raw embeddings, as computed at their own step
  fill: tf.Scalar; // how many rows hold embeddings (the rest are still empty)
}

/** What the contextualiser reads besides the images: texts, learned heads, the stale memory. */
export interface ContextInputs {
  txtRaw?: tf.Tensor2D; // [B, D], for memory = 'images+texts'
  heads?: Params; // LayerNorm and value-head weights (`lixp.*`)
  stale?: StaleMemory;
}

/** The number of layers of a value head. */
export const valueHeadLayers = (kind: ContextSwitches['valueHead']) => HEAD_LAYERS[kind];

/** rows of [N, D] through the value head of `kind` (parameters `lixp.value.<layer>`) */
function valueHead(x: tf.Tensor2D, kind: ContextSwitches['valueHead'], p: Params): tf.Tensor2D {
  const layers = HEAD_LAYERS[kind];
  let h = x;
  for (let l = 0; l < layers; l++) {
    h = tf.add(tf.matMul(h, p[`lixp.value.${l}.w`] as tf.Tensor2D), p[`lixp.value.${l}.b`]);
    if (l < layers - 1) h = quickGelu(h) as tf.Tensor2D;
  }
  return h;
}

/**
 * M over the batch's own columns as 0/1 entries [B, M0], 1 where attention is
 * forbidden: each image's own entry (maskSelf); with a separate context its whole
 * half; with an active subset every image outside its block; with texts in the
 * memory always its own caption. M0 = B, or 2B with texts. Null when nothing is hidden.
 */
function maskOf(B: number, s: ContextSwitches): tf.Tensor2D | null {
  const M = s.memory === 'images' ? B : 2 * B;
  const half = Math.ceil(B / 2);
  const block = s.activeSubset || B;
  if (B % block !== 0)
    throw new Error(`lixp: activeSubset ${block} must divide the batch size ${B}`);
  const m = new Float32Array(B * M);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      const sameHalf = i < half === j < half;
      const otherBlock = Math.floor(i / block) !== Math.floor(j / block);
      if ((s.maskSelf && i === j) || (s.context === 'separate' && sameHalf) || otherBlock)
        m[i * M + j] = 1;
    }
    if (M > B) m[i * M + B + i] = 1; // its own caption
  }
  return m.some((x) => x > 0) ? tf.tensor2d(m, [B, M]) : null;
}

/** Logit penalties [B, M] (0 or MASKED) for the batch's columns and then the stale memory's. */
function penaltyOf(B: number, s: ContextSwitches, stale?: StaleMemory): tf.Tensor2D | null {
  const hidden = maskOf(B, s);
  if (!stale) return hidden && (tf.mul(hidden, MASKED) as tf.Tensor2D);
  const S = stale.rows.shape[0];
  const empty = tf.cast(tf.greaterEqual(tf.range(0, S, 1, 'float32'), stale.fill), 'float32');
  const staleRow = tf.tile(tf.reshape(tf.mul(empty, MASKED), [1, S]), [B, 1]); // [B, S]
  const own = hidden ? tf.mul(hidden, MASKED) : tf.zeros([B, s.memory === 'images' ? B : 2 * B]);
  return tf.concat([own, staleRow], 1) as tf.Tensor2D;
}

/**
 * The attention A [B, M] of the first round and the contextualised embeddings
 * X̂ctx [B, D] under the switches `s`. imgRaw: [B, D]; M = B (+ B texts) (+ S stale rows).
 * With two stages the second round queries with the first round's output.
 */
export function lixpContext(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  s: ContextSwitches,
  extra: ContextInputs = {},
): { attention: tf.Tensor2D; xCtx: tf.Tensor2D } {
  const [B, d] = imgRaw.shape;
  if (onFusedPath(s)) return fusedContext(imgRaw, logTauCtx, s, extra.stale);
  const p = extra.heads ?? {};
  const parts = [imgRaw];
  if (s.memory === 'images+texts') parts.push(extra.txtRaw!);
  if (extra.stale) parts.push(extra.stale.rows); // no gradient: state, not a parameter
  const memory = parts.length > 1 ? (tf.concat(parts) as tf.Tensor2D) : imgRaw; // [M, D]
  const norm = (x: tf.Tensor2D, which: string) =>
    layerNorm(x, p[`lixp.ln${which}.g`] as tf.Tensor1D, p[`lixp.ln${which}.b`] as tf.Tensor1D);
  const keyRows = has(s.memoryNorm, 'keys') ? norm(memory, 'k') : memory;
  let values = has(s.memoryNorm, 'values') ? norm(memory, 'v') : memory;
  const query = (x: tf.Tensor2D) => (s.qkNorm ? l2normalize(x) : x);
  const q = query(imgRaw); // [B, D]
  // keys: the queries themselves in the paper's method (one normalisation, as in eq. X̂ctx)
  let keys = keyRows === imgRaw ? q : query(keyRows); // [M, D]
  if (has(s.stopGrad, 'keys')) keys = stopGradient(keys);
  if (has(s.stopGrad, 'values')) values = stopGradient(values);
  values = valueHead(values, s.valueHead, p);
  const scale = tf.div(tf.exp(tf.neg(logTauCtx)), Math.sqrt(d)); // 1 / (τctx √d)
  const penalty = penaltyOf(B, s, extra.stale);
  const attend = (queries: tf.Tensor2D) => {
    const logits = tf.mul(tf.matMul(queries, keys, false, true), scale); // [B, M]
    return tf.softmax(penalty ? tf.add(logits, penalty) : logits) as tf.Tensor2D; // M
  };
  const attention = attend(q);
  let mixed = tf.matMul(attention, values) as tf.Tensor2D; // [B, D]
  for (let stage = 1; stage < (s.stages ?? 1); stage++)
    mixed = tf.matMul(attend(query(mixed)), values) as tf.Tensor2D;
  return { attention, xCtx: s.residual ? tf.add(imgRaw, mixed) : mixed };
}

/** The paper's path, which the backend's fused kernel computes when it has one (lib/backend/kernels.ts). */
function onFusedPath(s: ContextSwitches): boolean {
  const plain = s.stopGrad === 'none' && s.memoryNorm === 'none' && s.valueHead === 'none';
  const one = s.memory === 'images' && (s.stages ?? 1) === 1;
  return s.qkNorm && plain && one && hasKernel(LIXP_CONTEXT);
}

/** lixpContext in one kernel call each way: same maths, same masks and errors. */
function fusedContext(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  s: ContextSwitches,
  stale?: StaleMemory,
) {
  const [B, d] = imgRaw.shape;
  const block = s.activeSubset || B;
  if (B % block !== 0)
    throw new Error(`lixp: activeSubset ${block} must divide the batch size ${B}`);
  const scale = tf.div(tf.exp(tf.neg(logTauCtx)), Math.sqrt(d)) as tf.Scalar; // 1 / (τctx √d)
  const attrs = {
    maskSelf: s.maskSelf,
    separate: s.context === 'separate',
    block: s.activeSubset || 0,
  };
  const { attention, out } = fusedLixpContext(imgRaw, scale, attrs, stale);
  return { attention, xCtx: s.residual ? (tf.add(imgRaw, out) as tf.Tensor2D) : out };
}

/**
 * The stale memory after a step: this batch's embeddings (constants now) in
 * front, the oldest rows dropped (first in, first out). imgRaw: [B, D].
 */
export function pushStale(stale: StaleMemory, imgRaw: tf.Tensor2D): StaleMemory {
  const S = stale.rows.shape[0];
  const B = imgRaw.shape[0];
  const fresh = stopGradient(imgRaw);
  const rows =
    B >= S
      ? tf.slice(fresh, [0, 0], [S, -1])
      : tf.concat([fresh, tf.slice(stale.rows, [0, 0], [S - B, -1])]);
  return { rows: rows as tf.Tensor2D, fill: tf.minimum(tf.add(stale.fill, B), S) as tf.Scalar };
}
