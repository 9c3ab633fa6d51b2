/**
 * Transformer building blocks on 2-D activations [B·T, D]. Keeping activations 2-D
 * avoids the wasm backend's broken gradient for 3-D × 2-D matMul; only attention
 * goes through 3-D batched matmuls [B·H, T, dh] (3-D × 3-D, which is fine).
 */
import * as tf from '@tensorflow/tfjs';
import { layerNorm, quickGelu } from './ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from './params';

export function dense(p: Params, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  const y = tf.matMul(x, p[`${prefix}.w`] as tf.Tensor2D) as tf.Tensor2D;
  const b = p[`${prefix}.b`];
  return b ? (tf.add(y, b) as tf.Tensor2D) : y;
}

export function norm(p: Params, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  return layerNorm(x, p[`${prefix}.g`] as tf.Tensor1D, p[`${prefix}.b`] as tf.Tensor1D);
}

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
 * Multi-head self-attention: softmax(q kᵀ / √dh + mask) v, heads merged and projected.
 * `mask` is an additive [T, T] bias (−1e9 where attention is forbidden) or null.
 */
export function selfAttention(
  p: Params,
  prefix: string,
  x: tf.Tensor2D, // [B·T, D]
  B: number,
  heads: number,
  mask: tf.Tensor2D | null,
): tf.Tensor2D {
  const T = x.shape[0] / B;
  const D = x.shape[1];
  const [q, k, v] = tf.split(dense(p, `${prefix}.qkv`, x), 3, 1); // 3 × [B·T, D]
  const qs = tf.mul(q, 1 / Math.sqrt(D / heads)) as tf.Tensor2D;
  let s = tf.matMul(
    splitHeads(qs, B, T, heads),
    splitHeads(k as tf.Tensor2D, B, T, heads),
    false,
    true,
  ); // [B·H, T, T]
  if (mask) s = tf.add(s, mask);
  const o = tf.matMul(tf.softmax(s), splitHeads(v as tf.Tensor2D, B, T, heads)); // [B·H, T, dh]
  return dense(p, `${prefix}.proj`, mergeHeads(o as tf.Tensor3D, B, heads));
}

/** Pre-LN block: x + attn(LN(x)), then x + MLP(LN(x)). */
export function block(
  p: Params,
  prefix: string,
  x: tf.Tensor2D,
  B: number,
  heads: number,
  mask: tf.Tensor2D | null,
): tf.Tensor2D {
  const h: tf.Tensor2D = tf.add(
    x,
    selfAttention(p, `${prefix}.attn`, norm(p, `${prefix}.ln1`, x), B, heads, mask),
  );
  const m = dense(
    p,
    `${prefix}.fc2`,
    quickGelu(dense(p, `${prefix}.fc1`, norm(p, `${prefix}.ln2`, h))) as tf.Tensor2D,
  );
  return tf.add(h, m) as tf.Tensor2D;
}

export function blockSpecs(prefix: string, d: number, mlpRatio: number): ParamSpecs {
  const hidden = Math.round(d * mlpRatio);
  return {
    ...layerNormSpecs(`${prefix}.ln1`, d),
    ...denseSpecs(`${prefix}.attn.qkv`, d, 3 * d),
    ...denseSpecs(`${prefix}.attn.proj`, d, d),
    ...layerNormSpecs(`${prefix}.ln2`, d),
    ...denseSpecs(`${prefix}.fc1`, d, hidden),
    ...denseSpecs(`${prefix}.fc2`, hidden, d),
  };
}
