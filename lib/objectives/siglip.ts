/**
 * SigLIP (Zhai et al. 2023, eq. 1): every pair (i, j) of a batch is an independent
 * binary problem, positive iff i = j:
 *   logits_ij = t · ⟨img_i, txt_j⟩ + b,   z_ij = +1 if i = j else −1
 *   L = −(1/B) Σ_i Σ_j log σ(z_ij · logits_ij)
 * Dividing by B (not B²) follows the paper and big_vision: the loss is a sum of B
 * per-image terms, so its scale does not shrink as the batch grows. t is learned
 * as log t; t = 10 and b = −10 at the start (the paper's init: with b = −10 the
 * initial positive rate σ(b) matches the ~1/B share of positives).
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { hasKernel, runFused, SIGMOID_PAIR_LOSS, SIGMOID_PAIR_LOSS_GRAD } from '../backend/kernels';
import {
  checkShape,
  l2normalize,
  logSigmoid,
  type Saved,
  saveForGrad,
  sum,
  withGrad,
} from '../model/ops';
import { num } from '../schema';
import { type Objective, POOLED, scalarSpec } from './objective';

export const SiglipSchema = v.strictObject({
  name: v.literal('siglip'),
  t: num({ above: 0 }), // initial scale t = exp(logScale) (eq. 1)
  b: num(), // initial bias b (eq. 1)
});
export type SiglipConfig = v.InferOutput<typeof SiglipSchema>;

/** Pairwise logits exp(logScale) · img · txtᵀ (+ b): [B, B]. */
export function pairLogits(
  img: tf.Tensor2D,
  txt: tf.Tensor2D,
  logScale: tf.Scalar,
  bias?: tf.Scalar,
): tf.Tensor2D {
  const s = tf.mul(tf.matMul(img, txt, false, true), tf.exp(logScale)) as tf.Tensor2D;
  return bias ? tf.add(s, bias) : s;
}

/** SigLIP sigmoid loss (see file header). img, txt: unit rows [B, D]. */
export function siglipLoss(
  img: tf.Tensor2D,
  txt: tf.Tensor2D,
  logScale: tf.Scalar,
  bias: tf.Scalar,
): tf.Scalar {
  checkShape(txt, img.shape, 'siglipLoss txt');
  return tf.tidy(() => sigmoidPairLoss(tf.matMul(img, txt, false, true), logScale, bias));
}

/** SigLIP's labels z [B, B]: +1 on the diagonal, −1 elsewhere (built in JS: no kernel calls). */
export function pairLabels(B: number): tf.Tensor2D {
  const z = new Float32Array(B * B).fill(-1);
  for (let i = 0; i < B; i++) z[i * B + i] = 1;
  return tf.tensor2d(z, [B, B]);
}

/**
 * sigmoidPairLoss as one SIGMOID_PAIR_LOSS kernel each way (lib/backend/native/lossops.h:
 * float32 elementwise, sums in double). Not the op path's bits: its loss is closer
 * to float64 than the op path's (whose Log1p and float32 Sum lose up to ~4e-4
 * relative at SigLIP's init), its gradients equal the op path's to rounding.
 */
const fusedPairLoss = withGrad<
  (cos: tf.Tensor2D, logScale: tf.Scalar, bias: tf.Scalar) => tf.Scalar
>((cos: tf.Tensor, logScale: tf.Tensor, bias: tf.Tensor, save: Saved) => {
  const restore = saveForGrad(save, [cos, logScale, bias]);
  return {
    value: runFused(SIGMOID_PAIR_LOSS, { cos, logScale, bias })[0],
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [c, ls, b] = restore(saved);
      return runFused(SIGMOID_PAIR_LOSS_GRAD, { dy, cos: c, logScale: ls, bias: b }); // dcos, dlogScale, dbias
    },
  };
});

/**
 * The SigLIP loss from the cosine similarities cos [B, B] (image i, text j):
 * −(1/B) Σ_ij log σ(z_ij (exp(logScale) cos_ij + b)). Shared by SigLIP, LIxP (twice,
 * with its own t and b each time) and Llip (whose cos_ij uses a per-caption image vector).
 * One fused kernel each way when the backend has one (LAB_NATIVE_LOSS=0 drops it),
 * else the ops below, the reference.
 */
export function sigmoidPairLoss(cos: tf.Tensor2D, logScale: tf.Scalar, bias: tf.Scalar): tf.Scalar {
  if (hasKernel(SIGMOID_PAIR_LOSS)) {
    checkShape(cos, [cos.shape[0], cos.shape[0]], 'sigmoidPairLoss cos');
    return fusedPairLoss(cos, logScale, bias);
  }
  return tf.tidy(() => {
    const B = cos.shape[0];
    checkShape(cos, [B, B], 'sigmoidPairLoss cos');
    const labels = pairLabels(B); // [B, B]
    const logits = tf.add(tf.mul(cos, tf.exp(logScale)), bias);
    const ll = logSigmoid(tf.mul(labels, logits)); // [B, B]
    return tf.div(tf.neg(sum(ll)), B) as tf.Scalar;
  });
}

export const siglip: Objective<SiglipConfig> = {
  ...POOLED,
  name: 'siglip',
  summary: 'sigmoid loss over every image-text pair, learnable scale t and bias b',
  schema: SiglipSchema,
  defaults: { name: 'siglip', t: 10, b: -10 },
  params: (cfg) => ({ logScale: scalarSpec(Math.log(cfg.t)), bias: scalarSpec(cfg.b) }),
  loss: (out, p) => {
    const [logScale, bias] = [p.logScale as tf.Scalar, p.bias as tf.Scalar];
    const loss = siglipLoss(l2normalize(out.image!), l2normalize(out.text!), logScale, bias);
    return { loss, metrics: { t: tf.exp(logScale), b: bias } };
  },
};
