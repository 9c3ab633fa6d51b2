/**
 * Small differentiable ops with hand-written gradients. They exist because the
 * wasm backend either computes the stock gradient wrongly (logSigmoid), lacks it
 * (gather: we use a one-hot matmul instead), or is slow on the ops the stock
 * rule needs (tanh/erf in GELU; many tiny kernels in layer norm). Each one has a
 * finite-difference test in test/ops.test.ts. `sum` is tf.sum with the stock
 * gradient's ones made in backend memory instead of JS: the same bits, tested in
 * test/step-overhead.test.ts.
 *
 * Quick GELU, layer norm and l2normalize run as one fused kernel each way when
 * the backend has one (lib/backend/kernels.ts: the native wasm kernels do); the
 * TF.js-op versions below are the fallback and the reference they are tested
 * against (l2normalize's in test/loss-fused.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import {
  ATTENTION,
  ATTENTION_GRAD,
  ATTENTION_POOL,
  ATTENTION_POOL_GRAD,
  hasKernel,
  L2_NORMALIZE,
  L2_NORMALIZE_GRAD,
  LAB_EMBED,
  LAB_EMBED_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
  QUICK_GELU,
  QUICK_GELU_GRAD,
  runFused,
} from '../backend/kernels';

export type Saved = (tensors: tf.Tensor[]) => void;
type GradOp = (...args: never[]) => {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
};

/**
 * Saves what a custom gradient reads, but a variable (a parameter): `save` clones
 * each tensor it keeps (one Identity kernel call each), while a variable outlives
 * the tape and can be read as it is (nothing assigns a parameter between a step's
 * forward and backward pass). Returns what gives the tensors back, in the
 * order of `ts`, from the `saved` list `gradFunc` receives.
 */
export function saveForGrad(save: Saved, ts: tf.Tensor[]): (saved: tf.Tensor[]) => tf.Tensor[] {
  const kept = ts.map((t) => !(t instanceof tf.Variable));
  save(ts.filter((_, i) => kept[i]));
  return (saved) => {
    let j = 0;
    return ts.map((t, i) => (kept[i] ? saved[j++] : t));
  };
}

/** tf.customGrad with the argument types spelled out (its own typing merges tensors and `save`). */
export function withGrad<F>(f: GradOp): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

/**
 * log σ(x) = −softplus(−x) = min(x, 0) − log1p(exp(−|x|)), stable for any x.
 * Gradient: d/dx log σ(x) = σ(−x). (wasm's stock LogSigmoid gradient is wrong.)
 */
export const logSigmoid = withGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: Saved) => {
  save([x]);
  const value = tf.sub(tf.minimum(x, 0), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
  return {
    value,
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => tf.mul(dy, tf.sigmoid(tf.neg(xs))),
  };
});

/** x forward, a zero gradient backward (JAX's stop_gradient): the LIxP stop-gradient ablations. */
export const stopGradient = withGrad<<T extends tf.Tensor>(x: T) => T>((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/** The constant of the sigmoid approximation of GELU used by OpenAI's CLIP. */
const QUICK_GELU_A = 1.702;

/**
 * "Quick GELU": x · σ(1.702 x), CLIP's activation. It avoids tanh/erf, which are
 * slow on wasm. Gradient: σ(ax) + a·x·σ(ax)(1 − σ(ax)).
 */
export const quickGelu = withGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: Saved) => {
  if (hasKernel(QUICK_GELU)) {
    save([x]); // the fused gradient recomputes σ(ax)
    return {
      value: runFused(QUICK_GELU, { x })[0],
      gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => runFused(QUICK_GELU_GRAD, { dy, x: xs })[0],
    };
  }
  const s = tf.sigmoid(tf.mul(x, QUICK_GELU_A));
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, [xs, ss]: tf.Tensor[]) =>
      tf.tidy(() => {
        const ds = tf.mul(tf.mul(tf.mul(xs, QUICK_GELU_A), ss), tf.sub(1, ss));
        return tf.mul(dy, tf.add(ss, ds));
      }),
  };
});

/** Layer norm's ε (every layer norm of the towers). */
export const LN_EPS = 1e-5;

/**
 * Layer norm over the last axis of a 2-D activation [N, D]:
 * y = (x − μ) / sqrt(σ² + ε) · γ + β. One custom gradient instead of the ~10 tiny
 * kernels autodiff would chain (each a separate wasm call).
 *   dx = (1/σ̂) · (g − mean(g) − x̂ · mean(g · x̂)),  g = dy · γ
 */
export const layerNorm = withGrad<
  (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D
>((x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: Saved) => {
  if (hasKernel(LAYER_NORM)) {
    const [y, xhat, rstd] = runFused(LAYER_NORM, { x, gamma, beta }, { eps: LN_EPS });
    const restore = saveForGrad(save, [xhat, rstd, gamma]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, g] = restore(saved);
        return runFused(LAYER_NORM_GRAD, { dy, xhat: xh, rstd: rs, gamma: g });
      },
    };
  }
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1]
  const rstd = tf.rsqrt(tf.add(variance, LN_EPS)); // [N, 1]
  const xhat = tf.mul(tf.sub(x, mean), rstd); // [N, D]
  const restore = saveForGrad(save, [xhat, rstd, gamma]);
  return {
    value: tf.add(tf.mul(xhat, gamma), beta),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xh, rs, g] = restore(saved);
        const gy = tf.mul(dy, g); // [N, D]
        const meanG = tf.mean(gy, -1, true);
        const meanGX = tf.mean(tf.mul(gy, xh), -1, true);
        const dx = tf.mul(rs, tf.sub(tf.sub(gy, meanG), tf.mul(xh, meanGX)));
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      }),
  };
});

/** [B·T, D] → [B·H, T, dh] */
function splitHeads(z: tf.Tensor2D, B: number, T: number, H: number): tf.Tensor3D {
  const dh = z.shape[1] / H;
  return tf.reshape(tf.transpose(tf.reshape(z, [B, T, H, dh]), [0, 2, 1, 3]), [B * H, T, dh]);
}

/** [B·H, T, dh] → [B·T, D] */
function mergeHeads(z: tf.Tensor3D, B: number, H: number): tf.Tensor2D {
  const [, T, dh] = z.shape;
  return tf.reshape(tf.transpose(tf.reshape(z, [B, H, T, dh]), [0, 2, 1, 3]), [B * T, H * dh]);
}

/**
 * Multi-head attention pooling (big_vision's MAP head): one query q [1, D]
 * attends over each image's T tokens, kv [B·T, 2D] (columns k | v):
 *   out_b = Concat_h softmax_t(q_h · k_bth / √dh) v_bth,  [B, D]
 * With the fused kernel (lib/backend/kernels.ts ATTENTION_POOL) it is one
 * kernel each way under one custom gradient; else the op-by-op version below,
 * the reference the kernel is tested against (equal to the last float bits).
 */
export function attentionPool(
  kv: tf.Tensor2D,
  q: tf.Tensor2D,
  B: number,
  heads: number,
): tf.Tensor2D {
  const T = kv.shape[0] / B;
  const D = kv.shape[1] / 2;
  const dh = D / heads;
  const scale = 1 / Math.sqrt(dh);
  if (hasKernel(ATTENTION_POOL)) {
    const attrs = { batch: B, heads, scale };
    const f = withGrad<(x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D>(
      (x: tf.Tensor, y: tf.Tensor, save: Saved) => {
        const [out, att] = runFused(ATTENTION_POOL, { kv: x, q: y }, attrs);
        const restore = saveForGrad(save, [x, y, att]);
        return {
          value: out,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
            const [xs, ys, as] = restore(saved);
            return runFused(ATTENTION_POOL_GRAD, { dy, kv: xs, q: ys, att: as }, attrs);
          },
        };
      },
    );
    return f(kv, q);
  }
  const [k, v] = tf.split(kv, 2, 1); // [B·T, D] each
  const toHeads = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [B, T, heads, dh]), [0, 2, 1, 3]); // [B, H, T, dh]
  const qh = tf.reshape(q, [1, heads, 1, dh]);
  const scores = tf.mul(sum(tf.mul(toHeads(k), qh), -1), scale); // [B, H, T]
  const att = tf.expandDims(tf.softmax(scores), -1); // [B, H, T, 1]
  return tf.reshape(sum(tf.mul(att, toHeads(v)), 2), [B, D]) as tf.Tensor2D;
}

/**
 * Multi-head self-attention of the qkv projection [B·T, 3D] (columns q | k | v):
 * softmax(q kᵀ / √dh + mask) v per head, heads merged: [B·T, D]. `mask` is an
 * additive [T, T] bias (−1e9 where attention is forbidden) or null.
 *
 * With the fused kernel (lib/backend/kernels.ts ATTENTION: the native wasm
 * kernels have it) it is one kernel each way under one custom gradient; else
 * the op-by-op version below, differentiated by autodiff, which is the
 * reference the fused kernel is tested against (same maths, sums in another
 * order: equal to the last float bits).
 */
export function multiHeadAttention(
  qkv: tf.Tensor2D,
  B: number,
  heads: number,
  mask: tf.Tensor2D | null,
): tf.Tensor2D {
  const T = qkv.shape[0] / B;
  const D = qkv.shape[1] / 3;
  const scale = 1 / Math.sqrt(D / heads);
  if (hasKernel(ATTENTION)) {
    const attrs = { batch: B, heads, scale };
    const f = withGrad<(x: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor, save: Saved) => {
      const [out, probs] = runFused(ATTENTION, mask ? { qkv: x, mask } : { qkv: x }, attrs);
      save([x, probs]);
      return {
        value: out,
        gradFunc: (dy: tf.Tensor, [xs, ps]: tf.Tensor[]) =>
          runFused(ATTENTION_GRAD, { dy, qkv: xs, probs: ps }, attrs)[0],
      };
    });
    return f(qkv);
  }
  const [q, k, v] = tf.split(qkv, 3, 1); // 3 × [B·T, D]
  const qs = tf.mul(q, scale) as tf.Tensor2D;
  let s = tf.matMul(
    splitHeads(qs, B, T, heads),
    splitHeads(k as tf.Tensor2D, B, T, heads),
    false,
    true,
  ); // [B·H, T, T]
  if (mask) s = tf.add(s, mask);
  const o = tf.matMul(tf.softmax(s), splitHeads(v as tf.Tensor2D, B, T, heads)); // [B·H, T, dh]
  return mergeHeads(o as tf.Tensor3D, B, heads);
}

/**
 * Embedding lookup table[ids]: [N, D]. With the native kernel (lib/backend/kernels.ts
 * LAB_EMBED) a row copy forward and a scatter-add backward; else a one-hot
 * matmul (wasm has no gradient for gather; a [N, V] × [V, D] product is cheap
 * at this lab's vocabulary sizes), the reference the kernel is tested against.
 */
export function embed(ids: tf.Tensor1D, table: tf.Tensor2D): tf.Tensor2D {
  if (hasKernel(LAB_EMBED)) {
    const vocab = table.shape[0];
    const f = withGrad<(t: tf.Tensor2D) => tf.Tensor2D>((t: tf.Tensor, save: Saved) => {
      const restore = saveForGrad(save, [ids]);
      return {
        value: runFused(LAB_EMBED, { ids, table: t })[0],
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          runFused(LAB_EMBED_GRAD, { dy, ids: restore(saved)[0] }, { vocab })[0],
      };
    });
    return f(table);
  }
  return tf.tidy(() => tf.matMul(tf.oneHot(ids, table.shape[0]).toFloat(), table));
}

/**
 * tf.sum(x, axis, keepDims) with TF.js's own gradient, dy·ones broadcast to x's
 * shape, but the ones made by a Fill kernel in backend memory: the stock rule
 * fills them in JS and copies them over on every backward pass (for the poolers'
 * and SigLIP's sums, about a million floats per `lab` step). Same Multiply of
 * the same values, so the same bits (test/step-overhead.test.ts). (tf.tile would
 * skip the product, but wasm's Tile is some 30× slower than this.)
 */
export function sum<T extends tf.Tensor>(
  x: tf.Tensor,
  axis?: number | number[],
  keepDims = false,
): T {
  const rank = x.rank;
  const axes =
    axis === undefined ? [...x.shape.keys()] : [axis].flat().map((a) => (a + rank) % rank);
  const f = withGrad<(x: tf.Tensor) => T>((xi: tf.Tensor) => ({
    value: tf.sum(xi, axes, keepDims),
    gradFunc: (dy: tf.Tensor) => {
      const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d)); // dy with the summed axes as 1
      return tf.mul(tf.reshape(dy, kept), tf.fill(x.shape, 1));
    },
  }));
  return f(x);
}

/**
 * l2normalize as one L2_NORMALIZE kernel each way. Its forward is the op
 * path's float arithmetic (same bits); its gradient, from ∂y_i/∂x_k =
 * r(δ_ik − y_i y_k), is dx = r·(dy − y·⟨dy, y⟩) per row instead of autodiff's
 * ~15 kernels.
 */
const fusedL2normalize = withGrad<(x: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor, save: Saved) => {
  const [y, r] = runFused(L2_NORMALIZE, { x }); // y [N, D], r [N, 1] = 1 / ‖x‖
  save([y, r]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [ys, rs]: tf.Tensor[]) =>
      runFused(L2_NORMALIZE_GRAD, { dy, y: ys, r: rs })[0],
  };
});

/**
 * Rows to unit length, x / sqrt(Σ x² + ε), with ε = 1e-12 so a zero row stays
 * finite. One fused kernel each way when the backend has one (LAB_NATIVE_LOSS=0
 * drops it), else the ops below, the reference.
 */
export function l2normalize(x: tf.Tensor2D): tf.Tensor2D {
  if (hasKernel(L2_NORMALIZE)) return fusedL2normalize(x);
  return tf.tidy(() => tf.mul(x, tf.rsqrt(tf.add(sum(tf.square(x), -1, true), 1e-12))));
}

/** Throws unless `x` has exactly `shape` (-1 matches any size). */
export function checkShape(x: tf.Tensor, shape: number[], what = 'tensor'): void {
  const ok = x.rank === shape.length && shape.every((d, i) => d === -1 || d === x.shape[i]);
  if (!ok) throw new Error(`${what}: expected shape [${shape}], got [${x.shape}]`);
}
