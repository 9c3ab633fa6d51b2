/**
 * CLIP (Radford et al. 2021): a B-way softmax classification in both directions,
 *   logits = t · img · txtᵀ,  L = ½ (CE_rows(logits, I) + CE_cols(logits, I)),
 * with t learned as log t from t = 1/0.07.
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { checkShape, l2normalize, sum } from '../model/ops';
import { num } from '../schema';
import { type Objective, POOLED, scalarSpec } from './objective';
import { pairLogits } from './siglip';

export const ClipSchema = v.strictObject({
  name: v.literal('clip'),
  t: num({ above: 0 }), // initial scale t = exp(logScale)
});
export type ClipConfig = v.InferOutput<typeof ClipSchema>;

/** CLIP softmax loss (see file header). img, txt: unit rows [B, D]. */
export function clipLoss(img: tf.Tensor2D, txt: tf.Tensor2D, logScale: tf.Scalar): tf.Scalar {
  checkShape(txt, img.shape, 'clipLoss txt');
  return tf.tidy(() => {
    const B = img.shape[0];
    const logits = pairLogits(img, txt, logScale); // [B, B]
    const eye = tf.eye(B);
    const rows = tf.neg(sum(tf.mul(tf.logSoftmax(logits, 1), eye))); // image → text
    const cols = tf.neg(sum(tf.mul(tf.logSoftmax(tf.transpose(logits), 1), eye))); // text → image
    return tf.div(tf.add(rows, cols), 2 * B) as tf.Scalar;
  });
}

export const clip: Objective<ClipConfig> = {
  ...POOLED,
  name: 'clip',
  summary: 'softmax cross-entropy over the batch in both directions, learnable scale t',
  schema: ClipSchema,
  defaults: { name: 'clip', t: 1 / 0.07 },
  params: (cfg) => ({ logScale: scalarSpec(Math.log(cfg.t)) }),
  loss: (out, p) => {
    const logScale = p.logScale as tf.Scalar;
    const loss = clipLoss(l2normalize(out.image!), l2normalize(out.text!), logScale);
    return { loss, metrics: { t: tf.exp(logScale) } };
  },
};
