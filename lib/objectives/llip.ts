/**
 * Llip: Latent Language Image Pretraining (Lavoie et al., ICML 2024).
 *
 * The image tower outputs K mixture tokens h_i^k instead of one vector; a
 * multi-head cross-attention whose query is the caption mixes them into one
 * image vector per (image i, caption j) pair, which is what the caption is
 * contrasted with (SigLIP loss):
 *
 *   Φ_ij^m = softmax_k(Q_j^m · K_i^mk / τ)            Q = g W_Q, K = h W_K      (eq. 1)
 *   z_ij   = Concat_m(Σ_k Φ_ij^mk V_i^mk) W_O          V = h W_V                (eq. 2)
 *   L      = L_SigLIP over cos(z_ij, t_j)
 *
 * τ is a fixed hyper-parameter (the official B/32 config uses 5 with M = 8 heads). Eq. 1 divides
 * the logits by τ and so do we; the paper's prose says a larger τ sharpens the
 * weights, which would mean a product, so read τ here as eq. 1's.
 * Every product is 2-D × 2-D or an equal-batch 3-D matmul (wasm's 3-D × 2-D
 * gradient is broken, see shared facts).
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { checkShape, l2normalize } from '../model/ops';
import { denseSpecs, type Params } from '../model/params';
import { int, num } from '../schema';
import { type Objective, scalarSpec } from './objective';
import { sigmoidPairLoss } from './siglip';

export const LlipSchema = v.strictObject({
  name: v.literal('llip'),
  mixtureTokens: int({ min: 1 }), // K learned tokens the image tower carries
  heads: int({ min: 1 }), // M heads of the mixing cross-attention (eq. 1); must divide embedDim
  tau: num({ above: 0 }), // fixed softmax temperature of eq. 1 (divides the logits)
  t: num({ above: 0 }), // initial SigLIP scale
  b: num(), // initial SigLIP bias
});
export type LlipConfig = v.InferOutput<typeof LlipSchema>;

/** The mixing hyper-parameters of eq. 1. */
export interface LlipMixing {
  heads: number; // M
  tau: number; // softmax temperature of eq. 1
}

/** The cross-attention projections and the SigLIP scale and bias. */
export interface LlipParams {
  wq: tf.Tensor2D; // W_Q [Dt, D]: caption → query
  wk: tf.Tensor2D; // W_K [D, D]: mixture token → key
  wv: tf.Tensor2D; // W_V [D, D]: mixture token → value
  wo: tf.Tensor2D; // W_O [D, D]: concatenated heads → image vector
  logScale: tf.Scalar;
  bias: tf.Scalar;
}

/**
 * z_ij of eq. 2 for every image i and caption j: [B, Bt, D].
 * mixtureTokens: [B, K, D]; captions g: [Bt, Dt] (the text tower's output).
 */
export function llipMix(
  mixtureTokens: tf.Tensor3D,
  captions: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Tensor3D {
  const [B, K, D] = mixtureTokens.shape;
  const Bt = captions.shape[0];
  const M = cfg.heads;
  if (D % M !== 0) throw new Error(`llipMix: width ${D} is not divisible by ${M} heads`);
  checkShape(p.wq, [captions.shape[1], D], 'llip W_Q');
  const dh = D / M;
  return tf.tidy(() => {
    const h = tf.reshape(mixtureTokens, [B * K, D]);
    const q = tf.transpose(tf.reshape(tf.matMul(captions, p.wq), [Bt, M, dh]), [1, 0, 2]); // [M, Bt, dh]
    const k = tf.transpose(tf.reshape(tf.matMul(h, p.wk), [B * K, M, dh]), [1, 0, 2]); // [M, B·K, dh]
    const v = tf.transpose(tf.reshape(tf.matMul(h, p.wv), [B, K, M, dh]), [2, 0, 1, 3]); // [M, B, K, dh]
    const s = tf.div(tf.matMul(q, k, false, true), cfg.tau); // [M, Bt, B·K]
    const phi = tf.softmax(tf.reshape(s, [M, Bt, B, K])); // Φ: softmax over the K tokens of each image
    const phiByImage = tf.reshape(tf.transpose(phi, [0, 2, 1, 3]), [M * B, Bt, K]);
    const mixed = tf.matMul(phiByImage, tf.reshape(v, [M * B, K, dh])); // [M·B, Bt, dh]
    const heads = tf.transpose(tf.reshape(mixed, [M, B, Bt, dh]), [1, 2, 0, 3]); // [B, Bt, M, dh]
    const z = tf.matMul(tf.reshape(heads, [B * Bt, D]), p.wo); // Concat_m(…) W_O
    return tf.reshape(z, [B, Bt, D]) as tf.Tensor3D;
  });
}

/**
 * The Llip loss: SigLIP on cos(z_ij, t_j). mixtureTokens [B, K, D]; captions
 * [B, D] are the raw text-tower outputs (the query source; normalised here
 * for the contrast).
 */
export function llipLoss(
  mixtureTokens: tf.Tensor3D,
  captions: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipMixing,
): tf.Scalar {
  const [B, , D] = mixtureTokens.shape;
  checkShape(captions, [B, D], 'llipLoss captions');
  return tf.tidy(() => {
    const z = l2normalize(tf.reshape(llipMix(mixtureTokens, captions, p, cfg), [B * B, D]));
    const t = l2normalize(captions); // [Bt, D]
    const cos = tf.sum(tf.mul(tf.reshape(z, [B, B, D]), t), -1) as tf.Tensor2D; // [B, Bt]: ⟨ẑ_ij, t̂_j⟩
    return sigmoidPairLoss(cos, p.logScale, p.bias);
  });
}

/** The named parameters of `llip.params` as LlipParams. */
function llipParams(p: Params): LlipParams {
  const w = (n: string) => p[`llip.${n}.w`] as tf.Tensor2D;
  const [logScale, bias] = [p.logScale as tf.Scalar, p.bias as tf.Scalar];
  return { wq: w('q'), wk: w('k'), wv: w('v'), wo: w('o'), logScale, bias };
}

/**
 * Llip as an objective. The mixture tokens are the image tower's K learned tokens
 * after its last block, mapped into the embedding space by the image head
 * (model/index.ts); the query is the projected caption embedding. (Issue 14 moves to the paper's exact
 * form: per-token key/value projections and the pre-projection text feature.)
 * Zero-shot mixes each image once per class prompt; prototypes and neighbours use
 * the unweighted mean of the K tokens.
 */
export const llip: Objective<LlipConfig> = {
  name: 'llip',
  summary: 'K mixture tokens mixed per caption by a text-conditioned cross-attention, SigLIP loss',
  schema: LlipSchema,
  defaults: { name: 'llip', mixtureTokens: 8, heads: 8, tau: 5, t: 10, b: -10 },
  needs: { image: false, mixtureTokens: true, textFeature: false },
  mixtureTokens: (cfg) => cfg.mixtureTokens,
  params: (cfg, model) => {
    const E = model.embedDim;
    return {
      ...denseSpecs('llip.q', E, E, false),
      ...denseSpecs('llip.k', E, E, false),
      ...denseSpecs('llip.v', E, E, false),
      ...denseSpecs('llip.o', E, E, false),
      logScale: scalarSpec(Math.log(cfg.t)),
      bias: scalarSpec(cfg.b),
    };
  },
  check: (cfg, sizes) =>
    sizes.embedDim % cfg.heads === 0
      ? null
      : ['heads', `(${cfg.heads}) must divide model.embedDim (${sizes.embedDim})`],
  loss: (out, p, cfg) => {
    const lp = llipParams(p);
    const loss = llipLoss(out.mixtureTokens!, out.text!, lp, cfg);
    return { loss, metrics: { t: tf.exp(lp.logScale), b: lp.bias } };
  },
  // the query keeps the scale it had in training: the mean of the raw prompt embeddings
  classTexts: (prompts, C, T) => {
    const E = prompts.text!.shape[1];
    return { text: tf.mean(tf.reshape(prompts.text!, [C, T, E]), 1) as tf.Tensor2D };
  },
  imageVectors: (img) => l2normalize(tf.mean(img.mixtureTokens!, 1)),
  similarity: (img, txt, p, cfg) => {
    const z = llipMix(img.mixtureTokens!, txt.text!, llipParams(p), cfg);
    const [N, M, E] = z.shape;
    const zn = tf.reshape(l2normalize(tf.reshape(z, [N * M, E]) as tf.Tensor2D), [N, M, E]);
    return tf.sum(tf.mul(zn, l2normalize(txt.text!)), -1) as tf.Tensor2D; // [N, M]: ⟨ẑ_ij, t̂_j⟩
  },
};
