/**
 * Transformer building blocks on 2-D activations [B·T, D]. Keeping activations 2-D
 * avoids the wasm backend's broken gradient for 3-D × 2-D matMul; only attention
 * goes through 3-D batched matmuls [B·H, T, dh] (3-D × 3-D, which is fine).
 */
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LAB_DENSE, LAB_DENSE_GRAD, runFused } from '../backend/kernels';
import { layerNorm, multiHeadAttention, quickGelu, type Saved, saveForGrad } from './ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from './params';

type CustomGradFn = Parameters<typeof tf.customGrad>[0];
type DenseFn = (...xwb: tf.Tensor[]) => tf.Tensor2D;

/** y = x·w (+ b) as one LAB_DENSE kernel each way; `bias` says whether b is passed. */
function fusedDense(bias: boolean): DenseFn {
  const f = (...args: unknown[]) => {
    const save = args.pop() as Saved;
    const [x, w, b] = args as tf.Tensor[];
    const restore = saveForGrad(save, [x, w]);
    return {
      value: runFused(LAB_DENSE, bias ? { x, w, b } : { x, w })[0], // [N, Dout]
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = restore(saved);
        return runFused(LAB_DENSE_GRAD, { dy, x: xs, w: ws }, { bias }); // dx [N, Din], dw, db
      },
    };
  };
  return tf.customGrad(f as unknown as CustomGradFn) as unknown as DenseFn;
}

const denseBias = fusedDense(true);
const denseNoBias = fusedDense(false);

/**
 * y = x·w + b: x [N, Din], w [Din, Dout], b [Dout] (optional) → [N, Dout].
 * With the fused kernel (lib/backend/kernels.ts LAB_DENSE: the native wasm
 * kernels have it; LAB_NATIVE_DENSE=0 drops it) one kernel each way under one
 * custom gradient, the same sgemm calls and row sum as the MatMul + Add below
 * and their autodiff gradients, so the same bits; else those ops, the reference.
 * Unlike autodiff, a custom gradient cannot skip dx when x needs none (the patch
 * embedding's input): about 0.8 ms of a `lab` step, measured.
 */
export function dense(p: Params, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  const w = p[`${prefix}.w`] as tf.Tensor2D;
  const b = p[`${prefix}.b`];
  if (hasKernel(LAB_DENSE)) return b ? denseBias(x, w, b) : denseNoBias(x, w);
  const y = tf.matMul(x, w) as tf.Tensor2D;
  return b ? (tf.add(y, b) as tf.Tensor2D) : y;
}

export function norm(p: Params, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  return layerNorm(x, p[`${prefix}.g`] as tf.Tensor1D, p[`${prefix}.b`] as tf.Tensor1D);
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
  const o = multiHeadAttention(dense(p, `${prefix}.qkv`, x), B, heads, mask); // [B·T, D]
  return dense(p, `${prefix}.proj`, o);
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
