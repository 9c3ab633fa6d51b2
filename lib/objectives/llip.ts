/**
 * Llip as an objective (Lavoie et al., ICML 2024, arXiv 2405.00740): the image
 * tower carries K learned mixture tokens; a cross-attention whose query is the
 * caption mixes them into one image vector per (image, caption) pair, contrasted
 * with the caption by the SigLIP loss. The math is in llip-mix.ts; this file is
 * the config, the weights Llip owns, and how evaluation scores with them.
 *
 * Config (`objective.*`), each a switch of the same code:
 *   mixtureTokens K (8), heads M (8), tau τ (5, divides the logits of eq. 1),
 *   mixing 'text' (Llip) | 'learned' | 'average' | 'first' (the rungs of Figure 3),
 *   patchTokens (false; Figure 7: the P patch tokens join the K mixture tokens,
 *   each with its own key/value projection), norm (false; LayerNorm on K, Q, V as
 *   in the official configs of the largest models), t and b (SigLIP's initial scale, bias).
 *
 * Evaluation: zero-shot mixes every image with every class, the class's target
 * the normalised mean of its templates' normalised z' and its query the mean of
 * its templates' queries (the paper's appendix and the official eval code);
 * retrieval mixes every image with every caption. Prototypes and neighbours use
 * `llipImageVectors`: for Llip, the uniform mixture of its values through W_O.
 * The tower's image head and pooler are not used: Llip owns its projections.
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import type { ModelConfig, TowerOutputs } from '../model/index';
import { l2normalize } from '../model/ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from '../model/params';
import { int, num, oneOf } from '../schema';
import {
  isTextConditioned,
  LLIP_MIXINGS,
  type LlipParams,
  llipForward,
  llipImageVectors,
  llipMixQueries,
  llipQueries,
  mixingEntropy,
  type NormParams,
} from './llip-mix';
import { type Objective, scalarSpec, unitMeanPerClass } from './objective';

const bool = v.boolean((i) => `must be true or false, got ${JSON.stringify(i.input)}`);

export const LlipSchema = v.strictObject({
  name: v.literal('llip'),
  mixtureTokens: int({ min: 1 }), // K learned tokens the image tower carries
  heads: int({ min: 1 }), // M heads of the mixing cross-attention (eq. 1); must divide embedDim
  tau: num({ above: 0 }), // τ of eq. 1: divides the logits, no √d (official B/32: 5)
  mixing: oneOf(LLIP_MIXINGS), // Figure 3's rungs: first (registers), average, learned, text (Llip)
  patchTokens: bool, // Figure 7: the patch tokens join the cross-attention
  norm: bool, // LayerNorm on keys, queries and values
  t: num({ above: 0 }), // initial SigLIP scale
  b: num(), // initial SigLIP bias
});
export type LlipConfig = v.InferOutput<typeof LlipSchema>;

/** Tokens the cross-attention reads: K, plus the P patches in the Figure 7 variant. */
export function llipTokenCount(cfg: LlipConfig, model: Pick<ModelConfig, 'image'>): number {
  const side = model.image.imageSize / model.image.patch;
  return cfg.mixtureTokens + (cfg.patchTokens ? side * side : 0);
}

/** The cross-attention's tokens [B, T, width]: mixture tokens, then patches if asked. */
export function llipTokens(out: TowerOutputs, cfg: LlipConfig): tf.Tensor3D {
  const h = out.mixtureTokens!;
  return cfg.patchTokens ? (tf.concat([h, out.patchTokens!], 1) as tf.Tensor3D) : h;
}

/** A [T, w, E] stack of per-token projections, std 1/√w like a dense layer's. */
function perTokenSpec(T: number, w: number, E: number): ParamSpecs[string] {
  return { shape: [T, w, E], init: 'normal', std: 1 / Math.sqrt(w), decay: true };
}

function llipSpecs(cfg: LlipConfig, model: ModelConfig): ParamSpecs {
  const E = model.embedDim;
  const w = model.image.width;
  const T = llipTokenCount(cfg, model);
  const attends = cfg.mixing === 'text' || cfg.mixing === 'learned';
  return {
    ...(cfg.mixing === 'text' ? denseSpecs('llip.q', model.text.width, E, false) : {}),
    // the learned query starts at the scale of a text query (LN'd g through W_Q: unit entries)
    ...(cfg.mixing === 'learned'
      ? { 'llip.query': { shape: [1, E], init: 'normal', std: 1, decay: false } }
      : {}),
    ...(attends ? { 'llip.k.w': perTokenSpec(T, w, E) } : {}),
    'llip.v.w': perTokenSpec(T, w, E),
    ...denseSpecs('llip.o', E, E, false),
    ...(cfg.norm && attends
      ? { ...layerNormSpecs('llip.kn', E), ...layerNormSpecs('llip.qn', E) }
      : {}),
    ...(cfg.norm ? layerNormSpecs('llip.vn', E) : {}),
    logScale: scalarSpec(Math.log(cfg.t)),
    bias: scalarSpec(cfg.b),
  };
}

/** The named parameters of `llip.params` as LlipParams (absent ones stay undefined). */
export function llipParams(p: Params): LlipParams {
  const ln = (n: string): NormParams | undefined =>
    p[`llip.${n}.g`]
      ? [p[`llip.${n}.g`] as tf.Tensor1D, p[`llip.${n}.b`] as tf.Tensor1D]
      : undefined;
  return {
    wq: p['llip.q.w'] as tf.Tensor2D | undefined,
    query: p['llip.query'] as tf.Tensor2D | undefined,
    wk: p['llip.k.w'] as tf.Tensor3D | undefined,
    wv: p['llip.v.w'] as tf.Tensor3D,
    wo: p['llip.o.w'] as tf.Tensor2D,
    kNorm: ln('kn'),
    qNorm: ln('qn'),
    vNorm: ln('vn'),
    logScale: p.logScale as tf.Scalar,
    bias: p.bias as tf.Scalar,
  };
}

/** Class texts for Llip: targets plus the template-averaged queries [C, E]. */
export type LlipTexts = TowerOutputs & { query?: tf.Tensor2D };

/** Images per slice when scoring: keeps Φ [M, Bt, n, T] near 8M floats. */
function imageChunk(M: number, Bt: number, T: number): number {
  return Math.max(1, Math.floor(8e6 / (M * Bt * T)));
}

/** ⟨ẑ_ij, ẑ'_j⟩ for Llip: [N, Bt], images in slices so Φ stays bounded. */
function textScores(
  tokens: tf.Tensor3D,
  q: tf.Tensor2D,
  target: tf.Tensor2D,
  p: LlipParams,
  cfg: LlipConfig,
) {
  const [N, T, w] = tokens.shape;
  const [Bt, E] = target.shape;
  const t = l2normalize(target);
  const n = imageChunk(cfg.heads, Bt, T);
  const parts: tf.Tensor2D[] = [];
  for (let s = 0; s < N; s += n) {
    const m = Math.min(n, N - s);
    const h = tf.slice(tokens, [s, 0, 0], [m, T, w]) as tf.Tensor3D;
    const z = llipMixQueries(h, q, p, cfg); // [m, Bt, E]
    const zn = tf.reshape(l2normalize(tf.reshape(z, [m * Bt, E]) as tf.Tensor2D), [m, Bt, E]);
    parts.push(tf.sum(tf.mul(zn, t), -1) as tf.Tensor2D);
  }
  return tf.concat(parts) as tf.Tensor2D;
}

export const llip: Objective<LlipConfig> = {
  name: 'llip',
  summary: 'K mixture tokens mixed per caption by a text-conditioned cross-attention, SigLIP loss',
  schema: LlipSchema,
  defaults: {
    name: 'llip',
    mixtureTokens: 8,
    heads: 8,
    tau: 5,
    mixing: 'text',
    patchTokens: false,
    norm: false,
    t: 10,
    b: -10,
  },
  needs: (cfg) => ({
    image: false,
    mixtureTokens: true,
    patchTokens: cfg.patchTokens,
    textFeature: isTextConditioned(cfg),
  }),
  mixtureTokens: (cfg) => cfg.mixtureTokens,
  params: llipSpecs,
  check: (cfg, sizes) =>
    sizes.embedDim % cfg.heads === 0
      ? null
      : ['heads', `(${cfg.heads}) must divide model.embedDim (${sizes.embedDim})`],
  loss: (out, p, cfg) => {
    const lp = llipParams(p);
    const g = isTextConditioned(cfg) ? out.textFeature! : null;
    const { loss, phi } = llipForward(llipTokens(out, cfg), g, out.text!, lp, cfg);
    const metrics = { t: tf.exp(lp.logScale), b: lp.bias, mixEntropy: mixingEntropy(phi) };
    return { loss, metrics };
  },
  classTexts: (prompts, C, T, p, cfg) => {
    const out: LlipTexts = unitMeanPerClass(prompts, C, T); // targets, as CLIP ensembles them
    if (!isTextConditioned(cfg)) return out;
    const q = llipQueries(prompts.textFeature!, llipParams(p)); // [C·T, E]
    out.query = tf.mean(tf.reshape(q, [C, T, q.shape[1]]), 1) as tf.Tensor2D;
    return out;
  },
  imageVectors: (img, p, cfg) =>
    l2normalize(llipImageVectors(llipTokens(img, cfg), llipParams(p), cfg)),
  similarity: (img, txt, p, cfg) => {
    const lp = llipParams(p);
    const tokens = llipTokens(img, cfg);
    if (!isTextConditioned(cfg))
      return tf.matMul(
        l2normalize(llipImageVectors(tokens, lp, cfg)),
        l2normalize(txt.text!),
        false,
        true,
      );
    const q = (txt as LlipTexts).query ?? llipQueries(txt.textFeature!, lp);
    return textScores(tokens, q, txt.text!, lp, cfg);
  },
};

export {
  isTextConditioned,
  LLIP_MIXINGS,
  type LlipMixing,
  type LlipMixingKind,
  type LlipParams,
  llipForward,
  llipImageVectors,
  llipLoss,
  llipMix,
  llipMixQueries,
  llipQueries,
  llipWeights,
  mixingEntropy,
} from './llip-mix';
