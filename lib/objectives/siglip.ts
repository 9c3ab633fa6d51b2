/**
 * Contrastive image-text losses on unit-norm embeddings.
 *
 * SigLIP (Zhai et al. 2023, eq. 1): every pair (i, j) of a batch is an independent
 * binary problem, positive iff i = j:
 *   logits_ij = exp(t) · ⟨img_i, txt_j⟩ + b,   z_ij = +1 if i = j else −1
 *   L = −(1/B) Σ_i Σ_j log σ(z_ij · logits_ij)
 * Dividing by B (not B²) follows the paper and big_vision: the loss is a sum of B
 * per-image terms, so its scale does not shrink as the batch grows.
 *
 * CLIP (Radford et al. 2021): a B-way softmax classification in both directions,
 *   logits = exp(t) · img · txtᵀ,  L = ½ (CE_rows(logits, I) + CE_cols(logits, I)).
 */
import * as tf from '@tensorflow/tfjs';
import { checkShape, logSigmoid } from '../model/ops';
import type { ParamSpecs } from '../model/params';

export type LossName = 'siglip' | 'clip';

/** SigLIP's learnable log-scale t (init log 10) and bias b (init −10). */
export const SIGLIP_INIT = { logScale: Math.log(10), bias: -10 };
/** CLIP's learnable log-scale t (init log(1/0.07)). */
export const CLIP_INIT = { logScale: Math.log(1 / 0.07) };

/** Pairwise logits exp(t) · img · txtᵀ (+ b): [B, B]. */
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

/**
 * The SigLIP loss from the cosine similarities cos [B, B] (image i, text j):
 * −(1/B) Σ_ij log σ(z_ij (exp(t) cos_ij + b)). Shared by SigLIP, LIxP (twice,
 * with its own t and b each time) and Llip (whose cos_ij uses a per-caption image vector).
 */
export function sigmoidPairLoss(cos: tf.Tensor2D, logScale: tf.Scalar, bias: tf.Scalar): tf.Scalar {
  return tf.tidy(() => {
    const B = cos.shape[0];
    checkShape(cos, [B, B], 'sigmoidPairLoss cos');
    const labels = tf.sub(tf.mul(tf.eye(B), 2), 1); // [B, B]: +1 diagonal, −1 elsewhere
    const logits = tf.add(tf.mul(cos, tf.exp(logScale)), bias);
    const ll = logSigmoid(tf.mul(labels, logits)); // [B, B]
    return tf.div(tf.neg(tf.sum(ll)), B) as tf.Scalar;
  });
}

/** CLIP softmax loss (see file header). img, txt: unit rows [B, D]. */
export function clipLoss(img: tf.Tensor2D, txt: tf.Tensor2D, logScale: tf.Scalar): tf.Scalar {
  checkShape(txt, img.shape, 'clipLoss txt');
  return tf.tidy(() => {
    const B = img.shape[0];
    const logits = pairLogits(img, txt, logScale); // [B, B]
    const eye = tf.eye(B);
    const rows = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits, 1), eye))); // image → text
    const cols = tf.neg(tf.sum(tf.mul(tf.logSoftmax(tf.transpose(logits), 1), eye))); // text → image
    return tf.div(tf.add(rows, cols), 2 * B) as tf.Scalar;
  });
}

/** The learnable scalars each loss owns, as parameter specs (never weight-decayed). */
export function lossParamSpecs(loss: LossName): ParamSpecs {
  const init = loss === 'siglip' ? SIGLIP_INIT.logScale : CLIP_INIT.logScale;
  const specs: ParamSpecs = { logScale: { shape: [], init: 'const', value: init, decay: false } };
  if (loss === 'siglip')
    specs.bias = { shape: [], init: 'const', value: SIGLIP_INIT.bias, decay: false };
  return specs;
}
