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
 * temperatures are the paper's recommendation (its temperature ablation).
 * Evaluation uses the plain image embedding: nothing changes at test time.
 *
 * Every ablation of the slides that changes the loss is a config switch below;
 * the defaults are the paper's method. Where the slides leave a detail open, the
 * choice is written beside the switch.
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { checkShape, l2normalize, layerNorm, quickGelu, stopGradient } from '../model/ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from '../model/params';
import { num, oneOf } from '../schema';
import { type Objective, POOLED, scalarSpec } from './objective';
import { sigmoidPairLoss } from './siglip';

const bool = v.boolean((i) => `must be true or false, got ${JSON.stringify(i.input)}`);
const WHERE = ['none', 'keys', 'values', 'both'] as const;

export const LixpSchema = v.strictObject({
  name: v.literal('lixp'),
  alpha: num({ min: 0, max: 1 }), // α: weight of the base loss (eq. LIxP; the paper's best ≈ 0.9)
  tau1: num({ above: 0 }), // initial scale of the base loss (first term)
  b1: num(), // initial bias of the base loss
  tau2: num({ above: 0 }), // initial scale of the contextual loss (second term)
  b2: num(), // initial bias of the contextual loss
  tauCtx: num({ above: 0 }), // initial temperature of the batch cross-attention (X̂ctx)
  /** M: no image attends to itself (ablation "self-attention masking") */
  maskSelf: bool,
  /** keys and queries L2-normalised (ablation "QK-norm"); off: raw dot products */
  qkNorm: bool,
  /**
   * Ablation "uncoupled temperatures". 'tau1=tau2': one scale for both loss terms
   * (τ1's parameter, τ1's init). 'tau2=tauCtx': one parameter is the contextual
   * loss's scale and the attention's temperature (τ2's init: τctx then starts at
   * τ2, i.e. a flat attention, as the blog's τctx curves start high).
   */
  temperatures: oneOf(['separate', 'tau1=tau2', 'tau2=tauCtx']),
  /** false: τctx stays at its initial value (ablation "τctx frozen") */
  learnTauCtx: bool,
  /** stop-gradient on the memory's keys, values or both (the queries keep theirs) */
  stopGrad: oneOf(WHERE),
  /** a learnable LayerNorm on the memory's keys, values or both (before the key norm) */
  memoryNorm: oneOf(WHERE),
  /** a head on the values M_V: linear D→D, or an MLP of 2 or 3 layers (width D, quick GELU) */
  valueHead: oneOf(['none', 'linear', 'mlp2', 'mlp3']),
  /** X̂ctx = X + A·V instead of A·V (ablation "contextualisation residual") */
  residual: bool,
  /**
   * What the images attend over. 'images+texts': the batch's text embeddings join
   * the memory (ablation "multimodal"); an image never sees its own caption (that
   * would hand it the positive), whatever maskSelf says.
   */
  memory: oneOf(['images', 'images+texts']),
  /**
   * Where the context comes from (ablation "separate context batch"). 'separate':
   * the batch is split in halves and each image attends only to the other half,
   * so its context never holds the images it is contrasted with in its own half.
   */
  context: oneOf(['batch', 'separate']),
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

/** The switches at their paper values: the method of the slides. */
export const LIXP_PAPER = {
  maskSelf: true,
  qkNorm: true,
  temperatures: 'separate',
  learnTauCtx: true,
  stopGrad: 'none',
  memoryNorm: 'none',
  valueHead: 'none',
  residual: false,
  memory: 'images',
  context: 'batch',
} as const;

/** The ablation switches of a LIxP config. */
export type LixpSwitches = Pick<LixpConfig, keyof typeof LIXP_PAPER>;

/** Does a 'none' | 'keys' | 'values' | 'both' switch cover `kind`? */
const has = (w: (typeof WHERE)[number], kind: 'keys' | 'values') => w === kind || w === 'both';

/** Large negative logit for masked entries (−∞ would give NaN gradients through 0 · ∞). */
const MASKED = -1e9;

/** What the contextualiser reads besides the images: texts for the memory, learned heads. */
export interface ContextInputs {
  txtRaw?: tf.Tensor2D; // [B, D], for memory = 'images+texts'
  heads?: Params; // LayerNorm and value-head weights (`lixp.*`)
}

/** rows of [B, D] through the value head of `kind` (parameters `lixp.value.<layer>`) */
function valueHead(x: tf.Tensor2D, kind: LixpSwitches['valueHead'], p: Params): tf.Tensor2D {
  const layers = { none: 0, linear: 1, mlp2: 2, mlp3: 3 }[kind];
  let h = x;
  for (let l = 0; l < layers; l++) {
    h = tf.add(tf.matMul(h, p[`lixp.value.${l}.w`] as tf.Tensor2D), p[`lixp.value.${l}.b`]);
    if (l < layers - 1) h = quickGelu(h) as tf.Tensor2D;
  }
  return h;
}

/**
 * M as 0/1 entries [B, M], 1 where attention is forbidden: each image's own entry
 * (maskSelf), with a separate context its whole half, and with texts in the
 * memory always its own caption. Null when nothing is hidden.
 */
function maskOf(B: number, s: LixpSwitches): tf.Tensor2D | null {
  const M = s.memory === 'images' ? B : 2 * B;
  const half = Math.ceil(B / 2);
  const m = new Float32Array(B * M);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      const sameHalf = i < half === j < half;
      if ((s.maskSelf && i === j) || (s.context === 'separate' && sameHalf)) m[i * M + j] = 1;
    }
    if (M > B) m[i * M + B + i] = 1; // its own caption
  }
  return m.some((x) => x > 0) ? tf.tensor2d(m, [B, M]) : null;
}

/**
 * The batch attention A [B, M] and the contextualised embeddings X̂ctx [B, D]
 * under the switches `s`. imgRaw: [B, D]; M = B, or 2B with texts in the memory.
 */
export function lixpContext(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  s: LixpSwitches,
  extra: ContextInputs = {},
): { attention: tf.Tensor2D; xCtx: tf.Tensor2D } {
  const [B, d] = imgRaw.shape;
  const p = extra.heads ?? {};
  const memory = s.memory === 'images' ? imgRaw : tf.concat([imgRaw, extra.txtRaw!]); // [M, D]
  const norm = (x: tf.Tensor2D, which: string) =>
    layerNorm(x, p[`lixp.ln${which}.g`] as tf.Tensor1D, p[`lixp.ln${which}.b`] as tf.Tensor1D);
  const keyRows = has(s.memoryNorm, 'keys') ? norm(memory, 'k') : memory;
  let values = has(s.memoryNorm, 'values') ? norm(memory, 'v') : memory;
  const q = s.qkNorm ? l2normalize(imgRaw) : imgRaw; // queries [B, D]
  // keys: the queries themselves in the paper's method (one normalisation, as in eq. X̂ctx)
  let keys = keyRows === imgRaw ? q : s.qkNorm ? l2normalize(keyRows) : keyRows; // [M, D]
  if (has(s.stopGrad, 'keys')) keys = stopGradient(keys);
  if (has(s.stopGrad, 'values')) values = stopGradient(values);
  values = valueHead(values, s.valueHead, p);
  const scale = tf.div(tf.exp(tf.neg(logTauCtx)), Math.sqrt(d)); // 1 / (τctx √d)
  let logits = tf.mul(tf.matMul(q, keys, false, true), scale); // [B, M]
  const hidden = maskOf(B, s);
  if (hidden) logits = tf.add(logits, tf.mul(hidden, MASKED)); // M
  const attention = tf.softmax(logits) as tf.Tensor2D;
  const mixed = tf.matMul(attention, values) as tf.Tensor2D; // [B, D]
  return { attention, xCtx: s.residual ? tf.add(imgRaw, mixed) : mixed };
}

/** The batch attention A [B, B] = softmax_j(M ⊙ ⟨x̄_i, x̄_j⟩ / (τctx √d)). imgRaw: [B, D]. */
export function contextAttention(
  imgRaw: tf.Tensor2D,
  logTauCtx: tf.Scalar,
  opts: { maskSelf?: boolean } = {},
): tf.Tensor2D {
  const s = { ...LIXP_PAPER, maskSelf: opts.maskSelf ?? true };
  return tf.tidy(() => lixpContext(imgRaw, logTauCtx, s).attention);
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
  const s = { ...LIXP_PAPER, maskSelf: opts.maskSelf ?? true };
  return tf.tidy(() => lixpContext(imgRaw, logTauCtx, s).xCtx);
}

/** Both loss terms and the attention they came from (the objective logs all three). */
function lixpTerms(
  imgRaw: tf.Tensor2D,
  txt: tf.Tensor2D,
  p: LixpParams,
  s: LixpSwitches = LIXP_PAPER,
  extra: ContextInputs = {},
) {
  checkShape(txt, imgRaw.shape, 'lixpLoss txt');
  const x = l2normalize(imgRaw);
  const base = sigmoidPairLoss(tf.matMul(x, txt, false, true), p.logTau1, p.bias1);
  const { attention, xCtx } = lixpContext(imgRaw, p.logTauCtx, s, extra);
  const cos = tf.matMul(l2normalize(xCtx), txt, false, true) as tf.Tensor2D;
  const ctx = sigmoidPairLoss(cos, p.logTau2, p.bias2);
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

/**
 * The attention's mean weight on images of the same identity as the query, and
 * what a uniform attention over the other images would give (its chance level).
 * Only the image part of the memory counts. identity: [B].
 */
function sameClassWeight(attention: tf.Tensor2D, identity: Int32Array) {
  const B = identity.length;
  const same = new Float32Array(B * B);
  let chance = 0;
  for (let i = 0; i < B; i++) {
    let n = 0;
    for (let j = 0; j < B; j++)
      if (j !== i && identity[j] === identity[i]) {
        same[i * B + j] = 1;
        n++;
      }
    chance += n / (B - 1) / B;
  }
  const images = tf.slice(attention, [0, 0], [B, B]); // [B, B]
  const weight = tf.div(tf.sum(tf.mul(images, tf.tensor2d(same, [B, B]))), B) as tf.Scalar;
  return { ctxSameClass: weight, ctxSameClassChance: tf.scalar(chance) };
}

/** The LIxP parameters a config owns: shared temperatures and a frozen τctx are not parameters. */
function lixpParamSpecs(cfg: LixpConfig, D: number): ParamSpecs {
  const specs: ParamSpecs = { logTau1: scalarSpec(Math.log(cfg.tau1)), bias1: scalarSpec(cfg.b1) };
  if (cfg.temperatures !== 'tau1=tau2') specs.logTau2 = scalarSpec(Math.log(cfg.tau2));
  specs.bias2 = scalarSpec(cfg.b2);
  if (cfg.temperatures !== 'tau2=tauCtx' && cfg.learnTauCtx)
    specs.logTauCtx = scalarSpec(Math.log(cfg.tauCtx));
  for (const which of ['k', 'v'] as const)
    if (cfg.memoryNorm === 'both' || cfg.memoryNorm === (which === 'k' ? 'keys' : 'values'))
      Object.assign(specs, layerNormSpecs(`lixp.ln${which}`, D));
  const layers = { none: 0, linear: 1, mlp2: 2, mlp3: 3 }[cfg.valueHead];
  for (let l = 0; l < layers; l++) Object.assign(specs, denseSpecs(`lixp.value.${l}`, D, D));
  return specs;
}

/** The five scalars of the loss from the parameters, applying the ties and the frozen τctx. */
export function lixpScalars(p: Params, cfg: LixpConfig): LixpParams {
  const logTau1 = p.logTau1 as tf.Scalar;
  const logTau2 = (cfg.temperatures === 'tau1=tau2' ? p.logTau1 : p.logTau2) as tf.Scalar;
  const logTauCtx =
    cfg.temperatures === 'tau2=tauCtx'
      ? logTau2
      : cfg.learnTauCtx
        ? (p.logTauCtx as tf.Scalar)
        : tf.scalar(Math.log(cfg.tauCtx)); // frozen: a constant, never a parameter
  return { logTau1, bias1: p.bias1 as tf.Scalar, logTau2, bias2: p.bias2 as tf.Scalar, logTauCtx };
}

export const lixp: Objective<LixpConfig> = {
  ...POOLED,
  name: 'lixp',
  summary: 'SigLIP plus a SigLIP loss on batch-contextualised image embeddings (τ1, τ2, τctx, α)',
  schema: LixpSchema,
  defaults: {
    name: 'lixp',
    alpha: 0.9,
    tau1: 10,
    b1: -10,
    tau2: 10,
    b2: -10,
    tauCtx: 1,
    ...LIXP_PAPER,
  },
  params: (cfg, model) => lixpParamSpecs(cfg, model.embedDim),
  loss: (out, p, cfg, info) => {
    checkAlpha(cfg.alpha);
    const s = lixpScalars(p, cfg);
    const extra = { txtRaw: out.text, heads: p };
    const { base, ctx, attention } = lixpTerms(out.image!, l2normalize(out.text!), s, cfg, extra);
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
      ...(info?.identity ? sameClassWeight(attention, info.identity) : {}),
    };
    return { loss, metrics };
  },
};
