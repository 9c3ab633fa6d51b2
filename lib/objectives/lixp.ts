/**
 * LIxP: Context-Aware Multimodal Pretraining (Roth et al., CVPR 2025).
 *
 * During training each image embedding cross-attends to the rest of the batch,
 * which plays the role of a few-shot support set; the contextualised embedding
 * gets its own contrastive loss beside the plain one:
 *
 *   x̂ctx_i = Σ_j softmax_j(M ⊙ ⟨x_i, x_j⟩ / (τctx √d)) x̂_j        (keys x: unit rows, values x̂: raw rows,
 *                                                                 M masks j = i so no image reads itself)
 *   L = α · L_SigLIP(X, T; τ1, b1) + (1 − α) · L_SigLIP(norm(X̂ctx), T; τ2, b2)
 *
 * τ1 and τ2 are SigLIP-style scales (logits = τ · cos + b, learned as log τ);
 * τctx divides the attention logits and is learned as log τctx. Three separate
 * temperatures are the paper's recommendation (its temperature ablation).
 */
import * as tf from '@tensorflow/tfjs';
import { checkShape, l2normalize } from '../model/ops';
import type { ParamSpecs } from '../model/params';
import { SIGLIP_INIT, sigmoidPairLoss } from './siglip';

/** The learnable scalars of the LIxP loss, as tensors (log temperatures and biases). */
export interface LixpParams {
  logTau1: tf.Scalar; // base loss scale τ1 (eq. LIxP, first term)
  bias1: tf.Scalar;
  logTau2: tf.Scalar; // contextual loss scale τ2 (second term)
  bias2: tf.Scalar;
  logTauCtx: tf.Scalar; // cross-attention temperature τctx (divides the attention logits)
}

/**
 * Initial values: τ1, τ2 and biases as SigLIP; τctx = 1, so at the start the
 * attention logits are cosines / √d, small, and the context is a near-uniform
 * average (the paper's curves show τctx high early, then dropping).
 */
export const LIXP_INIT = {
  logTau1: SIGLIP_INIT.logScale,
  bias1: SIGLIP_INIT.bias,
  logTau2: SIGLIP_INIT.logScale,
  bias2: SIGLIP_INIT.bias,
  logTauCtx: 0,
};

/** α: weight of the base loss (the paper's best is around 0.9). */
export const LIXP_ALPHA = 0.9;

/** The LIxP scalars as parameter specs (never weight-decayed). */
export function lixpParamSpecs(): ParamSpecs {
  const specs: ParamSpecs = {};
  for (const [name, value] of Object.entries(LIXP_INIT)) {
    specs[name] = { shape: [], init: 'const', value, decay: false };
  }
  return specs;
}

/** Large negative logit for the masked diagonal (−∞ would give NaN gradients through 0 · ∞). */
const MASKED = -1e9;

/**
 * The contextualised image embeddings X̂ctx [B, D] (raw, not normalised): each
 * row attends over the other rows of the batch (file header). imgRaw: [B, D].
 */
export function contextualize(imgRaw: tf.Tensor2D, logTauCtx: tf.Scalar): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, d] = imgRaw.shape;
    const x = l2normalize(imgRaw); // keys and queries: unit rows
    const scale = tf.div(tf.exp(tf.neg(logTauCtx)), Math.sqrt(d)); // 1 / (τctx √d)
    const mask = tf.mul(tf.eye(B), MASKED); // [B, B]: M, the diagonal masked
    const logits = tf.add(tf.mul(tf.matMul(x, x, false, true), scale), mask); // [B, B]
    return tf.matMul(tf.softmax(logits), imgRaw) as tf.Tensor2D; // values: raw rows
  });
}

/**
 * The LIxP loss. imgRaw: image embeddings before normalisation [B, D];
 * txt: unit-norm text embeddings [B, D]; alpha: weight of the base loss.
 */
export function lixpLoss(
  imgRaw: tf.Tensor2D,
  txt: tf.Tensor2D,
  p: LixpParams,
  alpha = LIXP_ALPHA,
): tf.Scalar {
  checkShape(txt, imgRaw.shape, 'lixpLoss txt');
  if (!(alpha >= 0 && alpha <= 1))
    throw new Error(`lixpLoss: alpha must be in [0, 1], got ${alpha}`);
  return tf.tidy(() => {
    const x = l2normalize(imgRaw);
    const base = sigmoidPairLoss(tf.matMul(x, txt, false, true), p.logTau1, p.bias1);
    const xCtx = l2normalize(contextualize(imgRaw, p.logTauCtx));
    const ctx = sigmoidPairLoss(tf.matMul(xCtx, txt, false, true), p.logTau2, p.bias2);
    return tf.add(tf.mul(base, alpha), tf.mul(ctx, 1 - alpha)) as tf.Scalar;
  });
}
