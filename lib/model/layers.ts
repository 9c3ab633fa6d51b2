/**
 * Transformer building blocks on 2-D activations [B·T, D]. Keeping activations 2-D
 * avoids the wasm backend's broken gradient for 3-D × 2-D matMul; only attention
 * goes through 3-D batched matmuls [B·H, T, dh] (3-D × 3-D, which is fine).
 */
import * as tf from '@tensorflow/tfjs';
import {
  BLOCK_GRAD_INPUTS,
  BLOCK_INPUTS,
  type BlockInput,
  hasKernel,
  LAB_BLOCK,
  LAB_BLOCK_GRAD,
  LAB_DENSE,
  LAB_DENSE_GRAD,
  runFused,
} from '../backend/kernels';
import {
  LN_EPS,
  layerNorm,
  multiHeadAttention,
  quickGelu,
  type Saved,
  saveForGrad,
  withGrad,
} from './ops';
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

/** Each LAB_BLOCK parameter input's name under the block's prefix (blockSpecs). */
const BLOCK_PARAM_NAMES: Record<BlockInput, string> = {
  ln1g: 'ln1.g',
  ln1b: 'ln1.b',
  wqkv: 'attn.qkv.w',
  bqkv: 'attn.qkv.b',
  wproj: 'attn.proj.w',
  bproj: 'attn.proj.b',
  ln2g: 'ln2.g',
  ln2b: 'ln2.b',
  w1: 'fc1.w',
  b1: 'fc1.b',
  w2: 'fc2.w',
  b2: 'fc2.b',
};

/**
 * The block below as one LAB_BLOCK kernel each way, under one custom gradient
 * whose saved tensor is one buffer: the same kernels in the same order on the
 * same operands, so the same bits (test/block.test.ts), with ~30 fewer kernel
 * calls per block and step. Needs every bias; null when a parameter is missing.
 */
function fusedBlock(
  p: Params,
  prefix: string,
  x: tf.Tensor2D,
  B: number,
  heads: number,
  mask: tf.Tensor2D | null,
): tf.Tensor2D | null {
  const params = BLOCK_INPUTS.map((k) => p[`${prefix}.${BLOCK_PARAM_NAMES[k]}`]);
  if (params.some((t) => t === undefined)) return null;
  const attrs = { batch: B, heads, eps: LN_EPS, scale: 1 / Math.sqrt(x.shape[1] / heads) };
  const f = withGrad<(...xs: tf.Tensor[]) => tf.Tensor2D>((...args: tf.Tensor[]) => {
    const save = (args as unknown[]).pop() as Saved;
    const [xi, ...ps] = args;
    const named = Object.fromEntries(BLOCK_INPUTS.map((k, i) => [k, ps[i]]));
    const inputs = { x: xi, ...(mask ? { mask } : {}), ...named };
    const [out, saved] = runFused(LAB_BLOCK, inputs, attrs);
    const restore = saveForGrad(save, [saved, ...BLOCK_GRAD_INPUTS.map((k) => named[k])]);
    return {
      value: out, // [B·T, D]
      gradFunc: (dy: tf.Tensor, kept: tf.Tensor[]) => {
        const [sv, ...gp] = restore(kept);
        const gradIns = Object.fromEntries(BLOCK_GRAD_INPUTS.map((k, i) => [k, gp[i]]));
        return runFused(LAB_BLOCK_GRAD, { dy, saved: sv, ...gradIns }, attrs); // dx, then each parameter's
      },
    };
  });
  return f(x, ...(params as tf.Tensor[]));
}

/**
 * Pre-LN block: x + attn(LN(x)), then x + MLP(LN(x)). With the fused kernel
 * (lib/backend/kernels.ts LAB_BLOCK; LAB_NATIVE_BLOCK=0 drops it) one kernel
 * each way; else the ops below, the reference it is tested against.
 */
export function block(
  p: Params,
  prefix: string,
  x: tf.Tensor2D,
  B: number,
  heads: number,
  mask: tf.Tensor2D | null,
): tf.Tensor2D {
  const fused = hasKernel(LAB_BLOCK) ? fusedBlock(p, prefix, x, B, heads, mask) : null;
  if (fused) return fused;
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
