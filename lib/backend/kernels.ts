/**
 * Fused kernels the lab defines beyond TF.js's own. A backend may register
 * them (lib/backend/native.ts does, for wasm with the OpenBLAS addon); lib code
 * asks `hasKernel` and otherwise runs the same maths as plain TF.js ops, which
 * stay the reference the fused kernels are tested against.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * One AdamW update of one parameter (optim.ts has the maths), in float32 in the
 * order the composite ops use, so both paths give the same bits.
 * Inputs: param, grad, m, v (same shape) and scale (1 element: the gradient
 * clipping factor). Outputs: param', m', v' and stats = [Σ step², Σ param'²].
 */
export const ADAMW = 'LabAdamW';

export interface AdamWAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 0 for parameters without weight decay */
  weightDecay: number;
  /** bias corrections 1 - beta^t */
  bc1: number;
  bc2: number;
}

/**
 * Every parameter's AdamW update and the global-norm clip in one call, with
 * the bits of the per-parameter path (ADAMW after TF.js's Square/Sum/AddN norm).
 * Inputs: p<i>, g<i>, m<i>, v<i> for i < count, r<j> for the parameters without
 * a gradient (counted in the parameter norm only). Attrs: AdamWMultiAttrs.
 * Outputs: p'<i>, m'<i>, v'<i> for each i in turn, then norms [3] =
 * [‖g‖ before clipping, ‖p'‖, ‖step‖].
 */
export const ADAMW_MULTI = 'LabAdamWMulti';

export interface AdamWMultiAttrs extends Omit<AdamWAttrs, 'weightDecay'> {
  /** one per updated parameter (0: no decay); its length is the count */
  weightDecay: number[];
  /** max global L2 norm of the gradient; 0 disables clipping */
  gradClip: number;
  /** how many r<j> inputs */
  rest: number;
}

/** Whether the active backend has the fused kernel `name`. */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Quick GELU y = x·σ(1.702x) (ops.ts). Inputs: x. Outputs: y. */
export const QUICK_GELU = 'LabQuickGelu';
/** Its gradient. Inputs: dy, x. Outputs: dx. */
export const QUICK_GELU_GRAD = 'LabQuickGeluGrad';
/**
 * Layer norm over the last axis of x [N, D] (ops.ts). Inputs: x, gamma, beta.
 * Attrs: eps. Outputs: y [N, D], xhat [N, D], rstd [N, 1].
 */
export const LAYER_NORM = 'LabLayerNorm';
/** Its gradient. Inputs: dy, xhat, rstd, gamma. Outputs: dx, dgamma, dbeta. */
export const LAYER_NORM_GRAD = 'LabLayerNormGrad';

/**
 * Multi-head self-attention softmax((q·scale) kᵀ + mask) v of the qkv
 * projection [B·T, 3D] (columns q | k | v; head h at h·dh inside each), heads
 * merged: lib/model/ops.ts `multiHeadAttention` has the op-by-op version.
 * Inputs: qkv, mask (optional: an additive [T, T] bias). Attrs: batch B, heads H,
 * scale. Outputs: out [B·T, D], probs [B·H, T, T] (the softmax, for the gradient).
 */
export const ATTENTION = 'LabAttention';
/** Its gradient. Inputs: dy [B·T, D], qkv, probs. Attrs as the forward. Outputs: dqkv [B·T, 3D]. */
export const ATTENTION_GRAD = 'LabAttentionGrad';

/**
 * Multi-head attention pooling (the MAP head): one query q [1, D] attends over
 * each image's T tokens, kv [B·T, 2D] (columns k | v; head h at h·dh inside
 * each): softmax_t((q·k_t) · scale) · v per head, heads merged (lib/model/ops.ts
 * `attentionPool` has the op-by-op version). Inputs: kv, q. Attrs: batch B,
 * heads H, scale. Outputs: out [B, D], att [B, H, T] (the softmax, for the gradient).
 */
export const ATTENTION_POOL = 'LabAttentionPool';
/** Its gradient. Inputs: dy [B, D], kv, q, att. Attrs as the forward. Outputs: dkv [B·T, 2D], dq [1, D]. */
export const ATTENTION_POOL_GRAD = 'LabAttentionPoolGrad';

/**
 * Embedding lookup out[i] = table[ids[i]] (lib/model/ops.ts `embed` has the
 * op-by-op version, a one-hot matmul: wasm has no gradient for gather). Inputs:
 * ids [N] (int32), table [V, D]. Outputs: out [N, D] (zeros for an id outside [0, V)).
 */
export const LAB_EMBED = 'LabEmbed';
/** Its gradient w.r.t. the table. Inputs: dy [N, D], ids. Attrs: vocab V. Outputs: dtable [V, D]. */
export const LAB_EMBED_GRAD = 'LabEmbedGrad';

/**
 * A dense layer y = x·w + b (lib/model/layers.ts `dense` has the op-by-op
 * version: MatMul, then Add). Inputs: x [N, Din], w [Din, Dout], b [Dout]
 * (optional). Outputs: y [N, Dout].
 */
export const LAB_DENSE = 'LabDense';
/**
 * Its gradient: dx = dy·wᵀ, dw = xᵀ·dy, db = Σ_rows dy. Inputs: dy [N, Dout],
 * x, w. Attrs: bias (false: no db). Outputs: dx [N, Din], dw [Din, Dout], db [Dout] (with bias).
 */
export const LAB_DENSE_GRAD = 'LabDenseGrad';

/**
 * A whole pre-LN transformer block (lib/model/layers.ts `block` has the
 * op-by-op version): h = x + proj(attention(qkv(LN1(x)))), out = h +
 * fc2(quickGelu(fc1(LN2(h)))), the same kernels in the same order as that
 * version, so the same bits. Inputs: x [B·T, D], mask (optional, [T, T]),
 * ln1g, ln1b, wqkv, bqkv, wproj, bproj, ln2g, ln2b, w1, b1, w2, b2. Attrs:
 * BlockAttrs. Outputs: out [B·T, D], saved (what the gradient reads, one flat buffer).
 */
export const LAB_BLOCK = 'LabBlock';
/**
 * Its gradient. Inputs: dy [B·T, D], saved, ln1g, wqkv, wproj, ln2g, w1, w2.
 * Attrs as the forward. Outputs: dx, then the gradients of ln1g … b2 in the
 * forward's input order.
 */
export const LAB_BLOCK_GRAD = 'LabBlockGrad';

/** LAB_BLOCK's parameter inputs, in the order LAB_BLOCK_GRAD returns their gradients. */
export const BLOCK_INPUTS = [
  'ln1g',
  'ln1b',
  'wqkv',
  'bqkv',
  'wproj',
  'bproj',
  'ln2g',
  'ln2b',
  'w1',
  'b1',
  'w2',
  'b2',
] as const;
export type BlockInput = (typeof BLOCK_INPUTS)[number];
/** The parameters LAB_BLOCK_GRAD reads (its inputs besides dy and saved). */
export const BLOCK_GRAD_INPUTS: readonly BlockInput[] = [
  'ln1g',
  'wqkv',
  'wproj',
  'ln2g',
  'w1',
  'w2',
];

export interface BlockAttrs {
  batch: number; // B
  heads: number;
  eps: number; // the layer norms'
  scale: number; // the attention's 1/√dh
}

/**
 * SigLIP's pair loss on the cosines cos [B, B] (lib/objectives/siglip.ts
 * `sigmoidPairLoss` has the op-by-op version): −(1/B) Σ_ij log σ(z_ij (exp(logScale)
 * cos_ij + b)), z = +1 on the diagonal, −1 elsewhere. Inputs: cos, logScale [],
 * bias []. Outputs: loss [].
 */
export const SIGMOID_PAIR_LOSS = 'LabSigmoidPairLoss';
/**
 * Its gradient, times dy. Inputs: dy [], cos, logScale, bias. Outputs: dcos [B, B],
 * dlogScale, dbias (the shapes of logScale and bias).
 */
export const SIGMOID_PAIR_LOSS_GRAD = 'LabSigmoidPairLossGrad';
/**
 * Rows of x [N, D] to unit length, y = x / sqrt(Σ x² + 1e-12) (lib/model/ops.ts
 * `l2normalize` has the op-by-op version). Inputs: x. Outputs: y [N, D], r [N, 1]
 * (the inverse norms, for the gradient).
 */
export const L2_NORMALIZE = 'LabL2Normalize';
/** Its gradient dx = r·(dy − y·⟨dy, y⟩) per row. Inputs: dy [N, D], y, r. Outputs: dx [N, D]. */
export const L2_NORMALIZE_GRAD = 'LabL2NormalizeGrad';

/**
 * Llip's pairwise mixing (lib/objectives/llip-mix.ts `mixText` has the op-by-op
 * version): Φ_j = softmax_k(⟨Q_j^m / τ, K_i^{mk}⟩), o_ij^m = Σ_k Φ_jk V_i^{mk}.
 * Inputs: keys, values [T, B, E] (per-token projections), q [Bt, E] (before 1/τ).
 * Attrs: heads M, tau. Outputs: mixed [B, Bt, E] (heads merged), phi [M, Bt, B, T].
 */
export const LLIP_MIX = 'LabLlipMix';
/** Its gradient. Inputs: dy [B, Bt, E], keys, values, q, phi. Attrs as the forward. Outputs: dkeys, dvalues, dq. */
export const LLIP_MIX_GRAD = 'LabLlipMixGrad';
/** Row entropies −Σ_k x log(x + 1e-30) of x [..., T] (probabilities). Inputs: x. Outputs: [...] (x's shape less its last axis). */
export const ROW_ENTROPY = 'LabRowEntropy';

/**
 * LIxP's contextualiser on its paper path (lib/objectives/lixp-context.ts
 * `lixpContext` has the op-by-op version): unit rows k of the memory
 * (the batch x, then the stale rows), A = softmax_j(scale · k_i·k_j + mask),
 * out = A · memory. Inputs: x [B, D], scale [] (1 / (τctx √d)), and optionally
 * stale [S, D] with fill [] (rows at index >= fill are empty). Attrs:
 * LixpContextAttrs. Outputs: out [B, D], attention [B, B + S], k [B + S, D],
 * rn [B + S] (the inverse norms, for the gradient).
 */
export const LIXP_CONTEXT = 'LabLixpContext';
/**
 * Its gradient. Inputs: dy [B, D], dAttention [B, M], x, scale, attention, k,
 * rn, optionally stale. Outputs: dx [B, D], dscale [] (no gradient to the stale rows).
 */
export const LIXP_CONTEXT_GRAD = 'LabLixpContextGrad';

export interface LixpContextAttrs {
  /** hide each image's own entry */
  maskSelf: boolean;
  /** hide each image's own half of the batch (context 'separate') */
  separate: boolean;
  /** attend only inside blocks of this many rows (0: the whole batch) */
  block: number;
}

/** Runs one of these kernels on the active backend; returns its outputs. */
export function runFused(
  name: string,
  inputs: tf.NamedTensorMap,
  attrs: tf.NamedAttrMap = {},
): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs);
  return Array.isArray(out) ? (out as tf.Tensor[]) : [out as tf.Tensor];
}
