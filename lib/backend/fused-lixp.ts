/**
 * LIxP's contextualiser as one differentiable call of the backend's
 * LIXP_CONTEXT kernel (kernels.ts), for lib/objectives/lixp-context.ts when
 * the backend has it. The kernel has two differentiable outputs (the mixed
 * embeddings and the attention), so its gradient is registered with TF.js
 * (tf.customGrad takes one output) and runs LIXP_CONTEXT_GRAD.
 */
import * as tf from '@tensorflow/tfjs';
import { LIXP_CONTEXT, LIXP_CONTEXT_GRAD, type LixpContextAttrs, runFused } from './kernels';

tf.registerGradient({
  kernelName: LIXP_CONTEXT,
  inputsToSave: ['x', 'scale', 'stale'],
  outputsToSave: [false, true, true, true], // attention, k, rn
  gradFunc: (dys, saved) => {
    const [dy, dAttention] = dys as tf.Tensor[];
    const [x, scale, stale, attention, k, rn] = saved;
    const ins = { dy, dAttention, x, scale, attention, k, rn, stale };
    const [dx, dscale] = runFused(LIXP_CONTEXT_GRAD, ins);
    // the stale rows are state, not parameters (lixp-context.ts): no gradient
    return {
      x: () => dx,
      scale: () => dscale,
      stale: () => tf.zerosLike(stale),
      fill: () => tf.zeros([]),
    };
  },
});

/**
 * out = softmax(scale · x̄ k̄ᵀ + mask) · memory with memory = x (then the stale
 * rows), x̄, k̄ its unit rows: lixp-context.ts on the paper's path.
 * x: [B, D]; scale: []; stale: [S, D] rows with fill [] of them in use (none: S = 0).
 * Returns the attention [B, B + S] and out [B, D].
 */
export function fusedLixpContext(
  x: tf.Tensor2D,
  scale: tf.Scalar,
  attrs: LixpContextAttrs,
  stale?: { rows: tf.Tensor2D; fill: tf.Scalar },
): { attention: tf.Tensor2D; out: tf.Tensor2D } {
  // no stale memory: zero rows (the gradient saves every input by name)
  const rows = stale?.rows ?? tf.zeros([0, x.shape[1]]);
  const inputs = { x, scale, stale: rows, fill: stale?.fill ?? tf.scalar(0) };
  const [out, attention, k, rn] = runFused(LIXP_CONTEXT, inputs, { ...attrs });
  tf.dispose([k, rn]); // kept for the gradient by the engine
  return { attention: attention as tf.Tensor2D, out: out as tf.Tensor2D };
}
