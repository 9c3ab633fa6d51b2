/**
 * LIxP: Context-Aware Multimodal Pretraining (Roth et al., CVPR 2025).
 *
 * During training each image embedding cross-attends to the rest of the batch,
 * which plays the role of a few-shot support set; the contextualised embedding
 * gets its own contrastive loss beside the plain one:
 *
 *   X̂ctx = softmax(M ⊙ X̄X̄ᵀ / (τctx √d)) X       (keys and queries X̄: unit rows,
 *                                                  values X: raw rows, M masks j = i)
 *   L = α · L_SigLIP(X̄, T; τ1, b1) + (1 − α) · L_SigLIP(norm(X̂ctx), T; τ2, b2)
 *
 * τ1 and τ2 are SigLIP-style scales (logits = τ · cos + b, learned as log τ);
 * τctx divides the attention logits and is learned as log τctx. Three separate
 * temperatures are the paper's recommendation (its temperature ablation, Table 3d).
 * Evaluation uses the plain image embedding: nothing changes at test time.
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { checkShape, l2normalize } from '../model/ops';
import { num } from '../schema';
import { type Objective, POOLED, scalarSpec } from './objective';
import { sigmoidPairLoss } from './siglip';

export const LixpSchema = v.strictObject({
  name: v.literal('lixp'),
  alpha: num({ min: 0, max: 1 }), // α: weight of the base loss (eq. LIxP; the paper's best ≈ 0.9)
  tau1: num({ above: 0 }), // initial scale of the base loss (first term)
  b1: num(), // initial bias of the base loss
  tau2: num({ above: 0 }), // initial scale of the contextual loss (second term)
  b2: num(), // initial bias of the contextual loss
  tauCtx: num({ above: 0 }), // initial temperature of the batch cross-attention (X̂ctx)
});
export type LixpConfig = v.InferOutput<typeof LixpSchema>;

/** The learnable scalars of the LIxP loss, as tensors (log temperatures and biases). */
export interface LixpParams {
  logTau1: tf.Scalar; // base loss scale τ1 (first term)
  bias1: tf.Scalar;
  logTau2: tf.Scalar; // contextual loss scale τ2 (second term)
  bias2: tf.Scalar;
  logTauCtx: tf.Scalar; // cross-attention temperature τctx (divides the attention logits)
}

/** Large negative logit for the masked diagonal (−∞ would give NaN gradients through 0 · ∞). */
const MASKED = -1e9;

/** The batch attention A [B, B] = softmax_j(M ⊙ ⟨x̄_i, x̄_j⟩ / (τctx √d)). imgRaw: [B, D]. */
export function contextAttention(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  opts: { maskSelf?: boolean } = {},
): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, d] = imgRaw.shape;
    const x = l2normalize(imgRaw); // keys and queries: unit rows
    const scale = tf.div(tf.exp(tf.neg(logTauCtx)), Math.sqrt(d)); // 1 / (τctx √d)
    let logits = tf.mul(tf.matMul(x, x, false, true), scale); // [B, B]
    if (opts.maskSelf ?? true) logits = tf.add(logits, tf.mul(tf.eye(B), MASKED)); // M
    return tf.softmax(logits) as tf.Tensor2D;
  });
}

/**
 * The contextualised image embeddings X̂ctx [B, D] (raw, not normalised): each
 * row attends over the other rows of the batch (file header). imgRaw: [B, D].
 */
export function contextualize(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  opts: { maskSelf?: boolean } = {},
): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(contextAttention(imgRaw, logTauCtx, opts), imgRaw)); // values: raw rows
}

/** Both loss terms and the attention they came from (the objective logs all three). */
function lixpTerms(imgRaw: tf.Tensor2D, txt: tf.Tensor2D, p: LixpParams) {
  checkShape(txt, imgRaw.shape, 'lixpLoss txt');
  const x = l2normalize(imgRaw);
  const base = sigmoidPairLoss(tf.matMul(x, txt, false, true), p.logTau1, p.bias1);
  const attention = contextAttention(imgRaw, p.logTauCtx); // [B, B]
  const xCtx = l2normalize(tf.matMul(attention, imgRaw) as tf.Tensor2D);
  const ctx = sigmoidPairLoss(tf.matMul(xCtx, txt, false, true), p.logTau2, p.bias2);
  return { base, ctx, attention };
}

const checkAlpha = (alpha: number) => {
  if (!(alpha >= 0 && alpha <= 1))
    throw new Error(`lixpLoss: alpha must be in [0, 1], got ${alpha}`);
};

/**
 * The LIxP loss. imgRaw: image embeddings before normalisation [B, D];
 * txt: unit-norm text embeddings [B, D]; alpha: weight of the base loss.
 */
export function lixpLoss(
  imgRaw: tf.Tensor2D,
  txt: tf.Tensor2D,
  p: LixpParams,
  alpha: number,
): tf.Scalar {
  checkAlpha(alpha);
  return tf.tidy(() => {
    const { base, ctx } = lixpTerms(imgRaw, txt, p);
    return tf.add(tf.mul(base, alpha), tf.mul(ctx, 1 - alpha)) as tf.Scalar;
  });
}

/** Mean entropy (nats) of the attention rows: log(B − 1) is uniform over the others, 0 one-hot. */
function meanEntropy(attention: tf.Tensor2D): tf.Scalar {
  const plogp = tf.mul(attention, tf.log(tf.add(attention, 1e-30))); // masked zeros give 0
  return tf.neg(tf.mean(tf.sum(plogp, 1))) as tf.Scalar;
}

export const lixp: Objective<LixpConfig> = {
  ...POOLED,
  name: 'lixp',
  summary: 'SigLIP plus a SigLIP loss on batch-contextualised image embeddings (τ1, τ2, τctx, α)',
  schema: LixpSchema,
  defaults: { name: 'lixp', alpha: 0.9, tau1: 10, b1: -10, tau2: 10, b2: -10, tauCtx: 1 },
  params: (cfg) => ({
    logTau1: scalarSpec(Math.log(cfg.tau1)),
    bias1: scalarSpec(cfg.b1),
    logTau2: scalarSpec(Math.log(cfg.tau2)),
    bias2: scalarSpec(cfg.b2),
    logTauCtx: scalarSpec(Math.log(cfg.tauCtx)),
  }),
  loss: (out, p, cfg) => {
    checkAlpha(cfg.alpha);
    const s = p as unknown as LixpParams; // the five scalars of `params`, by name
    const { base, ctx, attention } = lixpTerms(out.image!, l2normalize(out.text!), s);
    const loss = tf.add(tf.mul(base, cfg.alpha), tf.mul(ctx, 1 - cfg.alpha)) as tf.Scalar;
    const metrics = {
      tau1: tf.exp(s.logTau1),
      b1: s.bias1,
      tau2: tf.exp(s.logTau2),
      b2: s.bias2,
      tauCtx: tf.exp(s.logTauCtx),
      lossBase: base,
      lossCtx: ctx,
      ctxEntropy: meanEntropy(attention),
    };
    return { loss, metrics };
  },
};
