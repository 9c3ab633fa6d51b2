/**
 * Llip's token mixing (Lavoie et al., ICML 2024, arXiv 2405.00740, eqs. 1–3) as
 * pure functions of tensors; llip.ts makes an objective of them.
 *
 * The image tower outputs T tokens h_i^k of width w (the K mixture tokens, plus
 * the P patch tokens in the Figure 7 variant), after its final layer norm and
 * before any projection. Each token has its own key and value projection (the
 * official code's k_proj / v_proj are [T, w, E]); the query comes from the text
 * feature g_j before the text projection:
 *
 *   K_i^{mk} = LN_K(h_i^k W_K^k)^m,  V_i^{mk} = LN_V(h_i^k W_V^k)^m,  Q_j^m = LN_Q(g_j W_Q)^m
 *   Φ_ij^{mk} = softmax_k(⟨Q_j^m, K_i^{mk}⟩ / τ)                                     (eq. 1)
 *   z_ij = Concat_m(Σ_k Φ_ij^{mk} V_i^{mk}) W_O                                      (eq. 2)
 *   L = SigLIP over exp(t)·⟨ẑ_ij, ẑ'_j⟩ + b,  z'_j = g_j W_T (the usual text head)   (eq. 3)
 *
 * (·)^m is head m's slice of E/M dims; the LNs are optional (`norm`). τ DIVIDES
 * the logits and there is no 1/√(E/M): that is eq. 1 and the official code
 * (`softmax(K·Q / weight_scale)`, weight_scale = 5 for B/32). The paper's prose
 * (§7, "higher temperatures lead to logits with higher magnitudes leading to
 * sharper activations") describes a product instead; we follow the equation and
 * the code, so here a larger τ means flatter weights.
 *
 * The rungs of the paper's Figure 3 are other choices of Φ in the same code:
 *   'first'   Φ = one-hot on token 1 (SigLIP + registers; SigLIP itself at K = 1)
 *   'average' Φ = 1/T (uniform mixing)
 *   'learned' Φ_i = softmax_k(⟨q^m, K_i^{mk}⟩ / τ) with one learned query q for all samples
 *   'text'    Φ_ij as eq. 1: Llip.
 * The first three do not depend on the caption: z_ij = z_i, so their loss is a
 * plain B×B SigLIP. Only 'text' builds the B×B×E tensor of mixed vectors.
 *
 * Every product is 2-D × 2-D or an equal-batch 3-D matmul (wasm's 3-D × 2-D
 * gradient is broken, see shared facts).
 *
 * Llip's own mixing (eqs. 1–2 for 'text') and the entropy of Φ run as one fused
 * kernel each way when the backend has them (lib/backend/kernels.ts LLIP_MIX,
 * ROW_ENTROPY: the native wasm kernels do); the TF.js-op versions below are the
 * fallback and the reference they are tested against (equal to the last bits).
 */
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LLIP_MIX, LLIP_MIX_GRAD, ROW_ENTROPY, runFused } from '../backend/kernels';
import { checkShape, l2normalize, layerNorm } from '../model/ops';
import { sigmoidPairLoss } from './siglip';

/** How Φ is chosen: the rungs of the paper's Figure 3, Llip last. */
export const LLIP_MIXINGS = ['first', 'average', 'learned', 'text'] as const;
export type LlipMixingKind = (typeof LLIP_MIXINGS)[number];

/** The mixing hyper-parameters of eq. 1. */
export interface LlipMixing {
  heads: number; // M
  tau: number; // τ of eq. 1 (divides the logits)
  mixing?: LlipMixingKind; // default 'text'
}

/** A layer norm's gain and bias [E] each. */
export type NormParams = [tf.Tensor1D, tf.Tensor1D];

/** Llip's own weights: per-token projections, query, output map, SigLIP scalars. */
export interface LlipParams {
  wk?: tf.Tensor3D; // W_K [T, w, E], one key projection per token ('learned', 'text')
  wv: tf.Tensor3D; // W_V [T, w, E], one value projection per token
  wq?: tf.Tensor2D; // W_Q [Dt, E]: text feature g → query ('text')
  query?: tf.Tensor2D; // [1, E]: the learned query shared by all samples ('learned')
  wo: tf.Tensor2D; // W_O [E, E]
  kNorm?: NormParams; // LayerNorm on the keys, queries, values when present
  qNorm?: NormParams;
  vNorm?: NormParams;
  logScale: tf.Scalar;
  bias: tf.Scalar;
}

const kindOf = (cfg: LlipMixing): LlipMixingKind => cfg.mixing ?? 'text';

type Saved = (tensors: tf.Tensor[]) => void;
type GradResult = {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
};

/** tf.customGrad with the argument types spelled out (as ops.ts does). */
function withGrad<F>(f: (...args: never[]) => GradResult): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

/** `x` [N, 1] repeated along a new last axis of size n: [N, n], by a rank-1 matmul (wasm broadcasts slowly). */
function spread(x: tf.Tensor, n: number): tf.Tensor2D {
  return tf.matMul(tf.reshape(x, [-1, 1]) as tf.Tensor2D, tf.ones([1, n]));
}

/**
 * Softmax over the last axis. Same value as tf.softmax; its gradient
 * dx = y ⊙ (dy − Σ_k dy_k y_k) spreads the row sums with a matmul instead of
 * wasm's broadcasting multiply, the slowest kernel of the pairwise mixing.
 */
const softmaxLast = withGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: Saved) => {
  const y = tf.softmax(x);
  save([y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [ys]: tf.Tensor[]) => [
      tf.tidy(() => {
        const T = ys.shape[ys.rank - 1];
        const yy = tf.reshape(ys, [-1, T]);
        const dyy = tf.mul(tf.reshape(dy, [-1, T]), yy); // [N, T]
        const rows = tf.matMul(dyy as tf.Tensor2D, tf.ones([T, 1])); // [N, 1]: Σ_k dy_k y_k
        return tf.reshape(tf.sub(dyy, tf.mul(spread(rows, T), yy)), ys.shape);
      }),
    ],
  };
});

/**
 * cos_ij = ⟨z_ij, t̂_j⟩ / ‖z_ij‖ for z [B, Bt, E] and unit targets t̂ [Bt, E]: [B, Bt].
 * The value of l2normalize then a dot product, with one hand-written gradient
 *   ∂cos/∂z_ij = (t̂_j − cos_ij ẑ_ij) / ‖z_ij‖,   ∂cos/∂t̂_j = ẑ_ij
 * that makes a few passes over the B·Bt·E tensor instead of autodiff's many.
 */
const pairCosine = withGrad<(z: tf.Tensor3D, t: tf.Tensor2D) => tf.Tensor2D>(
  (z: tf.Tensor3D, t: tf.Tensor2D, save: Saved) => {
    const rn = tf.rsqrt(tf.add(tf.sum(tf.square(z), -1), 1e-12)); // [B, Bt]: 1/‖z_ij‖ (l2normalize's ε)
    const cos = tf.mul(tf.sum(tf.mul(z, t), -1), rn); // [B, Bt]
    save([z, t, rn, cos]);
    return {
      value: cos,
      gradFunc: (g: tf.Tensor, [zs, ts, r, c]: tf.Tensor[]) =>
        tf.tidy(() => {
          const [B, Bt, E] = zs.shape;
          const a = tf.mul(g, r); // [B, Bt]
          const aE = tf.reshape(spread(a, E), [B, Bt, E]);
          const bE = tf.reshape(spread(tf.mul(tf.mul(a, c), r), E), [B, Bt, E]);
          const dz = tf.sub(tf.mul(aE, ts), tf.mul(bE, zs)); // (t̂ − cos ẑ)/‖z‖ · g
          const dt = tf.sum(tf.mul(aE, zs), 0); // Σ_i g_ij ẑ_ij
          return [dz, dt];
        }),
    };
  },
);

/** Does this mixing depend on the caption? */
export const isTextConditioned = (cfg: LlipMixing) => kindOf(cfg) === 'text';

function norm2d(x: tf.Tensor2D, n?: NormParams): tf.Tensor2D {
  return n ? layerNorm(x, n[0], n[1]) : x;
}

/** tokens [B, T, w] through per-token weights [T, w, E] (+ LN): [T, B, E]. */
function perToken(tokens: tf.Tensor3D, w: tf.Tensor3D, n?: NormParams): tf.Tensor3D {
  const [B, T, width] = tokens.shape;
  checkShape(w, [T, width, w.shape[2]], 'llip per-token projection');
  const y = tf.matMul(tf.transpose(tokens, [1, 0, 2]), w) as tf.Tensor3D; // [T, B, E]
  if (!n) return y;
  const E = w.shape[2];
  return tf.reshape(norm2d(tf.reshape(y, [T * B, E]) as tf.Tensor2D, n), [T, B, E]);
}

/** [T, B, E] → [M, B, T, dh]: each head's slice of every token of every image. */
function tokenHeads(x: tf.Tensor3D, M: number): tf.Tensor4D {
  const [T, B, E] = x.shape;
  if (E % M !== 0) throw new Error(`llip: width ${E} is not divisible by ${M} heads`);
  return tf.transpose(tf.reshape(x, [T, B, M, E / M]), [2, 1, 0, 3]) as tf.Tensor4D;
}

/** Q_j = LN_Q(g_j W_Q): the caption queries [Bt, E] (before the head split). */
export function llipQueries(g: tf.Tensor2D, p: LlipParams): tf.Tensor2D {
  if (!p.wq) throw new Error('llip: text queries need W_Q (mixing = text)');
  checkShape(p.wq, [g.shape[1], p.wq.shape[1]], 'llip W_Q');
  return norm2d(tf.matMul(g, p.wq), p.qNorm);
}

/** softmax_k(⟨Q_j^m, K_i^{mk}⟩ / τ) for queries q [Bt, E]: Φ [M, Bt, B, T]. */
function attend(keys: tf.Tensor4D, q: tf.Tensor2D, tau: number): tf.Tensor4D {
  const [M, B, T, dh] = keys.shape;
  const Bt = q.shape[0];
  // 1/τ on the queries, not on the M·Bt·B·T logits: the same numbers, a far smaller tensor
  const qh = tf.transpose(tf.reshape(tf.div(q, tau), [Bt, M, dh]), [1, 0, 2]) as tf.Tensor3D; // [M, Bt, dh]
  const k = tf.reshape(keys, [M, B * T, dh]) as tf.Tensor3D;
  const s = tf.matMul(qh, k, false, true); // [M, Bt, B·T]: ⟨Q, K⟩/τ, no 1/√dh (eq. 1)
  return softmaxLast(tf.reshape(s, [M, Bt, B, T])) as tf.Tensor4D; // over each image's T tokens
}

/** The text-free weights of the first three rungs: Φ [M, 1, B, T]. */
function imageWeights(tokens: tf.Tensor3D, p: LlipParams, cfg: LlipMixing): tf.Tensor4D {
  const [B, T] = tokens.shape;
  const M = cfg.heads;
  const kind = kindOf(cfg);
  if (kind === 'learned') {
    if (!p.wk || !p.query) throw new Error('llip: mixing = learned needs W_K and the query');
    const keys = tokenHeads(perToken(tokens, p.wk, p.kNorm), M);
    return attend(keys, norm2d(p.query, p.qNorm), cfg.tau);
  }
  if (kind === 'first') {
    const one = tf.ones([M, 1, B, 1]);
    return (T > 1 ? tf.concat([one, tf.zeros([M, 1, B, T - 1])], 3) : one) as tf.Tensor4D;
  }
  // 'average', and Llip's own text-free vector (llipImageVectors)
  return tf.fill([M, 1, B, T], 1 / T) as tf.Tensor4D;
}

/**
 * The mixing weights Φ: [M, Bt, B, T] for Llip ('text', queries from g [Bt, Dt]),
 * [M, 1, B, T] for the text-free rungs (g unused: one Φ serves every caption).
 */
export function llipWeights(
  tokens: tf.Tensor3D,
  g: tf.Tensor2D | null,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Tensor4D {
  if (!isTextConditioned(cfg)) return imageWeights(tokens, p, cfg);
  if (!g) throw new Error('llip: mixing = text needs the text features g');
  return weightsFor(tokens, llipQueries(g, p), p, cfg);
}

/** Φ [M, Bt, B, T] for given queries q [Bt, E] (after W_Q and LN_Q). */
function weightsFor(tokens: tf.Tensor3D, q: tf.Tensor2D, p: LlipParams, cfg: LlipMixing) {
  if (!p.wk) throw new Error('llip: mixing = text needs W_K');
  return attend(tokenHeads(perToken(tokens, p.wk, p.kNorm), cfg.heads), q, cfg.tau);
}

/** Eq. 2: Concat_m(Σ_k Φ^{mk} V^{mk}) W_O for Φ [M, Bt, B, T]: z [B, Bt, E]. */
function mix(tokens: tf.Tensor3D, phi: tf.Tensor4D, p: LlipParams): tf.Tensor3D {
  const [M, Bt, B, T] = phi.shape;
  const v = tokenHeads(perToken(tokens, p.wv, p.vNorm), M); // [M, B, T, dh]
  const dh = v.shape[3];
  const phiByImage = tf.reshape(tf.transpose(phi, [0, 2, 1, 3]), [M * B, Bt, T]) as tf.Tensor3D;
  const mixed = tf.matMul(phiByImage, tf.reshape(v, [M * B, T, dh]) as tf.Tensor3D); // [M·B, Bt, dh]
  const heads = tf.transpose(tf.reshape(mixed, [M, B, Bt, dh]), [1, 2, 0, 3]); // [B, Bt, M, dh]
  const z = tf.matMul(tf.reshape(heads, [B * Bt, M * dh]) as tf.Tensor2D, p.wo); // Concat_m(…) W_O
  return tf.reshape(z, [B, Bt, p.wo.shape[1]]) as tf.Tensor3D;
}

/**
 * Eqs. 1–2 for queries q [Bt, E] (after W_Q and LN_Q): z [B, Bt, E] and the
 * weights Φ [M, Bt, B, T] it used. With the fused kernel, one call each way
 * from the per-token keys and values to the merged heads (Φ is its side
 * output, for metrics); otherwise weightsFor and mix, op by op.
 */
function mixText(
  tokens: tf.Tensor3D,
  q: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): { z: tf.Tensor3D; phi: tf.Tensor4D } {
  if (!hasKernel(LLIP_MIX)) {
    const phi = weightsFor(tokens, q, p, cfg);
    return { z: mix(tokens, phi, p), phi };
  }
  if (!p.wk) throw new Error('llip: mixing = text needs W_K');
  const [B, T] = tokens.shape;
  const keys = perToken(tokens, p.wk, p.kNorm); // [T, B, E]
  const values = perToken(tokens, p.wv, p.vNorm); // [T, B, E]
  const E = keys.shape[2];
  if (E % cfg.heads !== 0)
    throw new Error(`llip: width ${E} is not divisible by ${cfg.heads} heads`);
  checkShape(q, [-1, E], 'llip queries');
  checkShape(values, [T, B, E], 'llip values');
  const attrs = { heads: cfg.heads, tau: cfg.tau };
  let kept: tf.Tensor | null = null; // Φ, kept past customGrad's inner tidy
  const fused = withGrad<(k: tf.Tensor, v: tf.Tensor, q: tf.Tensor) => tf.Tensor>(
    (k: tf.Tensor, v: tf.Tensor, qq: tf.Tensor, save: Saved) => {
      const [mixed, ph] = runFused(LLIP_MIX, { keys: k, values: v, q: qq }, attrs);
      kept = tf.keep(ph);
      save([k, v, qq, ph]);
      return {
        value: mixed,
        gradFunc: (dy: tf.Tensor, [ks, vs, qs, ps]: tf.Tensor[]) =>
          runFused(LLIP_MIX_GRAD, { dy, keys: ks, values: vs, q: qs, phi: ps }, attrs),
      };
    },
  );
  const mixed = fused(keys, values, q); // [B, Bt, E]: Concat_m(Σ_k Φ^{mk} V^{mk})
  const phi = tf.clone(kept!) as tf.Tensor4D; // owned by the caller's scope (same data)
  kept!.dispose();
  const Bt = q.shape[0];
  const z = tf.matMul(tf.reshape(mixed, [B * Bt, E]) as tf.Tensor2D, p.wo); // … W_O
  return { z: tf.reshape(z, [B, Bt, p.wo.shape[1]]) as tf.Tensor3D, phi };
}

/**
 * z_ij of eq. 2 for every image i and caption j: [B, Bt, E] (mixing = text;
 * g [Bt, Dt] the text features); the text-free rungs give [B, 1, E].
 */
export function llipMix(
  tokens: tf.Tensor3D,
  g: tf.Tensor2D | null,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Tensor3D {
  return tf.tidy(() => {
    if (!isTextConditioned(cfg)) return mix(tokens, imageWeights(tokens, p, cfg), p);
    if (!g) throw new Error('llip: mixing = text needs the text features g');
    return mixText(tokens, llipQueries(g, p), p, cfg).z;
  });
}

/** z_ij for queries already projected (and normalised) [Bt, E], e.g. template-averaged: [B, Bt, E]. */
export function llipMixQueries(
  tokens: tf.Tensor3D,
  q: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Tensor3D {
  return tf.tidy(() => mixText(tokens, q, p, cfg).z);
}

/**
 * One caption-free vector per image [B, E]: z_i of the rung's own text-free Φ
 * ('first', 'average', 'learned'); for Llip ('text') the uniform mixture
 * Φ = 1/T of its values, i.e. the 'average' rung read off Llip's own weights.
 * The paper defines none (few-shot needs one); this one keeps Llip's V and W_O,
 * lands in the space the text targets live in, and needs no caption or query.
 */
export function llipImageVectors(tokens: tf.Tensor3D, p: LlipParams, cfg: LlipMixing) {
  return tf.tidy(() => {
    const textFree = isTextConditioned(cfg) ? { ...cfg, mixing: 'average' as const } : cfg;
    const z = mix(tokens, imageWeights(tokens, p, textFree), p);
    return tf.reshape(z, [tokens.shape[0], p.wo.shape[1]]) as tf.Tensor2D;
  });
}

/** Mean entropy of Φ over its rows, in units of log T (0: one token, 1: uniform). */
export function mixingEntropy(phi: tf.Tensor4D): tf.Scalar {
  const T = phi.shape[3];
  if (T < 2) return tf.scalar(0);
  return tf.tidy(() => {
    const h = hasKernel(ROW_ENTROPY)
      ? runFused(ROW_ENTROPY, { x: phi })[0]
      : tf.neg(tf.sum(tf.mul(phi, tf.log(tf.add(phi, 1e-30))), -1)); // 0·log 0 = 0
    return tf.div(tf.mean(h), Math.log(T)) as tf.Scalar;
  });
}

/** The loss and the mixing weights it used (for metrics). */
export function llipForward(
  tokens: tf.Tensor3D,
  g: tf.Tensor2D | null,
  zt: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): { loss: tf.Scalar; phi: tf.Tensor4D } {
  const B = tokens.shape[0];
  const E = p.wo.shape[1];
  checkShape(zt, [B, E], 'llip text targets');
  let phi: tf.Tensor4D;
  let z: tf.Tensor3D; // [B, Bt, E]
  if (isTextConditioned(cfg)) {
    if (!g) throw new Error('llip: mixing = text needs the text features g');
    ({ z, phi } = mixText(tokens, llipQueries(g, p), p, cfg));
  } else {
    phi = imageWeights(tokens, p, cfg);
    z = mix(tokens, phi, p);
  }
  const t = l2normalize(zt); // ẑ'_j [Bt, E]
  let cos: tf.Tensor2D; // [B, Bt]: ⟨ẑ_ij, ẑ'_j⟩
  if (phi.shape[1] === 1) cos = tf.matMul(l2normalize(tf.reshape(z, [B, E])), t, false, true);
  else cos = pairCosine(z, t);
  return { loss: sigmoidPairLoss(cos, p.logScale, p.bias), phi };
}

/**
 * The Llip loss (eq. 3): SigLIP over exp(t)·⟨ẑ_ij, ẑ'_j⟩ + b. tokens [B, T, w],
 * g [B, Dt] the text features (null for the text-free rungs), zt = g W_T [B, E]
 * the text targets.
 */
export function llipLoss(
  tokens: tf.Tensor3D,
  g: tf.Tensor2D | null,
  zt: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Scalar {
  return tf.tidy(() => llipForward(tokens, g, zt, p, cfg).loss);
}
