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
import { checkShape, l2normalize } from '../model/ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from '../model/params';
import { int, num, oneOf } from '../schema';
import {
  type ContextInputs,
  lixpContext,
  MEMORY_PARTS,
  pushStale,
  type StaleMemory,
  VALUE_HEADS,
  valueHeadLayers,
} from './lixp-context';
import { type Objective, POOLED, scalarSpec } from './objective';
import { sigmoidPairLoss } from './siglip';

const bool = v.boolean((i) => `must be true or false, got ${JSON.stringify(i.input)}`);

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
  stopGrad: oneOf(MEMORY_PARTS),
  /** a learnable LayerNorm on the memory's keys, values or both (before the key norm) */
  memoryNorm: oneOf(MEMORY_PARTS),
  /** a head on the values M_V: linear D→D, or an MLP of 2 or 3 layers (width D, quick GELU) */
  valueHead: oneOf(VALUE_HEADS),
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
  // The three switches below were added after the first runs: optional, so the
  // configs (and run ids) of runs without them stay what they were.
  /**
   * Ablation "stale buffer": S past image embeddings join the memory as keys and
   * values (first in, first out; constants, computed by the weights of their own
   * step, like MoCo's queue without a momentum encoder). The slides' 32K / 128K /
   * 512K beside their 32K batch are 1, 4 and 16 batches; the lab's batch of 256
   * makes those 256, 1024 and 4096 (sweeps/lixp-memory.ts). Until S embeddings
   * have been seen, the empty rows are masked. 0 or absent: no stale memory.
   */
  stale: v.optional(int({ min: 0 })),
  /**
   * Ablation "reduced active buffer": each image attends only to the images of
   * its block of `activeSubset` consecutive batch rows (batches are drawn at
   * random, so the blocks are a random partition; at scale, one device's share of
   * the batch). The slides' 1k / 2k / 8k of a 32K batch are 1/32, 1/16 and 1/4 of
   * it: 8, 16 and 64 of the lab's 256. Must divide the batch; 0 or absent: all.
   */
  activeSubset: v.optional(int({ min: 0 })),
  /**
   * Ablation "two-stage" contextualisation. The slides name it without defining
   * it; our reading: a second round of attention over the same memory, queried
   * by the first round's output (X̂ctx² = A(X̂ctx¹) V). Absent or 1: one round.
   */
  stages: v.optional(int({ min: 1, max: 2 })),
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
export type LixpSwitches = Pick<
  LixpConfig,
  keyof typeof LIXP_PAPER | 'stale' | 'activeSubset' | 'stages'
>;

export { lixpContext };

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

/** Names of the stale memory's state tensors (`Objective.state`). */
const STALE_ROWS = 'lixp.stale.rows';
const STALE_FILL = 'lixp.stale.fill';

/**
 * The stale memory a config keeps, from the state beside the parameters.
 * Absent state (a loss called outside training, without the model's state) is an error.
 */
function staleOf(p: Params, cfg: LixpConfig): StaleMemory | undefined {
  if (!cfg.stale) return undefined;
  const rows = p[STALE_ROWS] as tf.Tensor2D | undefined;
  if (!rows)
    throw new Error(
      `lixp: stale=${cfg.stale} needs the model's state '${STALE_ROWS}' beside its parameters`,
    );
  return { rows, fill: p[STALE_FILL] as tf.Scalar };
}

/** The attention's mean total weight on the stale rows (the columns after the batch's B). */
function staleWeight(attention: tf.Tensor2D, B: number): tf.Scalar {
  return tf.mean(tf.sum(tf.slice(attention, [0, B], [B, -1]), 1)) as tf.Scalar;
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
  for (let l = 0; l < valueHeadLayers(cfg.valueHead); l++)
    Object.assign(specs, denseSpecs(`lixp.value.${l}`, D, D));
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
  state: (cfg, model): ParamSpecs =>
    cfg.stale
      ? {
          [STALE_ROWS]: { shape: [cfg.stale, model.embedDim], init: 'zeros', decay: false },
          [STALE_FILL]: { shape: [], init: 'zeros', decay: false },
        }
      : {},
  check: (cfg) => {
    const alone = (what: string): [string, string] | null =>
      cfg.memory !== 'images'
        ? ['memory', `must be 'images' with ${what} (texts in the memory are not defined there)`]
        : cfg.context !== 'batch'
          ? ['context', `must be 'batch' with ${what}`]
          : null;
    if (cfg.activeSubset === 1)
      return [
        'activeSubset',
        'must be 0 (off) or >= 2: a block of one image has nothing to attend to',
      ];
    if (cfg.stale && cfg.activeSubset)
      return ['activeSubset', 'must be 0 with a stale memory (one ablation at a time)'];
    if (cfg.stale) return alone('a stale memory');
    if (cfg.activeSubset) return alone('an active subset');
    return null;
  },
  loss: (out, p, cfg, info) => {
    checkAlpha(cfg.alpha);
    const s = lixpScalars(p, cfg);
    const stale = staleOf(p, cfg);
    const extra = { txtRaw: out.text, heads: p, stale };
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
      ...(stale ? { ctxStaleWeight: staleWeight(attention, out.image!.shape[0]) } : {}),
    };
    if (!stale) return { loss, metrics };
    const after = pushStale(stale, out.image!);
    return { loss, metrics, next: { [STALE_ROWS]: after.rows, [STALE_FILL]: after.fill } };
  },
};
