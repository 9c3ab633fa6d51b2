/**
 * The training-free few-shot methods of the LIxP paper (its Table 1), as small
 * pure functions over frozen, cached embeddings: the prototypical classifier,
 * Tip-Adapter (published defaults, or α, β cross-validated on the support set)
 * and nearest-neighbour voting (plurality, rank-weighted, softmax-weighted).
 * Each takes query rows [N, E], support rows [S, E] with their labels and returns
 * logits [N, C]; rows need not be unit length (every method normalises them).
 * The neighbour search and votes are in neighbours.ts; the linear probe, the
 * trained reference, in probe.ts; episodes, the embedding cache and the
 * results table in fewshot-suite.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { l2normalize } from '../model/ops';
import { nearestNeighbours, type Vote, voteLogits } from './neighbours';

export { type Neighbours, nearestNeighbours, type Vote, voteLogits } from './neighbours';

/**
 * CLIP's logit scale, which Tip-Adapter puts on the zero-shot cosines (its
 * eq. 6: logits = 100·f Wcᵀ + α·A·L). Kept fixed so the published α, β mean
 * what they meant there.
 */
export const TIP_TEXT_SCALE = 100;

/**
 * exp(x) for x <= 0 (Tip-Adapter's kernel), as σ(x)/σ(−x): the backend's native
 * sigmoid makes this ~2.5× faster than wasm's scalar Exp on [5000, 512], and for
 * x <= 0 both factors are accurate (σ(−x) ∈ [1/2, 1); measured relative error
 * 2.7e-7 against tf.exp on x ∈ [−40, 0]).
 */
export function expNonPositive(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sigmoid(x), tf.sigmoid(tf.neg(x))));
}

/** Tip-Adapter's published defaults (Zhang et al. 2022, ImageNet: α = 1, β = 5.5). */
export const TIP_DEFAULTS = { alpha: 1, beta: 5.5 } as const;

/** Throws unless `labels` has one class in [0, numClasses) per support row. */
export function checkSupport(support: tf.Tensor2D, labels: Int32Array, numClasses: number): void {
  if (labels.length !== support.shape[0])
    throw new Error(`few-shot: ${labels.length} labels for ${support.shape[0]} support rows`);
  for (const y of labels)
    if (!(y >= 0 && y < numClasses))
      throw new Error(`few-shot: label ${y} outside [0, ${numClasses})`);
}

/** One-hot rows [S, C] of the labels. */
export function oneHotLabels(labels: Int32Array, numClasses: number): tf.Tensor2D {
  return tf.tidy(
    () => tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat() as tf.Tensor2D,
  );
}

/**
 * Prototypical classifier: cosine similarity [N, C] of each unit query row with
 * each class prototype, the L2-normalised mean of that class's unit support rows.
 * A class without support rows gets a zero prototype (cosine 0).
 */
export function prototypeLogits(
  query: tf.Tensor2D,
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
): tf.Tensor2D {
  checkSupport(support, labels, numClasses);
  return tf.tidy(() => {
    const y = oneHotLabels(labels, numClasses); // [S, C]
    // the sum of the unit rows points where their mean does; normalising drops the 1/k
    const protos = l2normalize(tf.matMul(y, l2normalize(support), true, false)); // [C, E]
    return tf.matMul(l2normalize(query), protos, false, true); // [N, C]
  });
}

/**
 * Tip-Adapter from cosines: 100·textCos + α·exp(−β·(1 − affinity))·onehot, with
 * textCos [N, C] the zero-shot cosines, affinity [N, S] the query–support cosines
 * and onehot [S, C] the support labels.
 */
export function tipFromCosines(
  textCos: tf.Tensor2D,
  affinity: tf.Tensor2D,
  onehot: tf.Tensor2D,
  opts: { alpha: number; beta: number },
): tf.Tensor2D {
  return tf.tidy(() => {
    const cache = expNonPositive(tf.mul(tf.sub(affinity, 1), opts.beta)); // [N, S]
    const visual = tf.matMul(cache, onehot); // [N, C]
    return tf.add(tf.mul(textCos, TIP_TEXT_SCALE), tf.mul(visual, opts.alpha)) as tf.Tensor2D;
  });
}

/**
 * Tip-Adapter (training-free): with q̂, ŝ, ĉ the L2-normalised rows of query,
 * support and classText [C, E], returns 100·q̂ĉᵀ + α·exp(−β·(1 − q̂ŝᵀ))·onehot(labels).
 */
export function tipAdapterLogits(
  query: tf.Tensor2D,
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  classText: tf.Tensor2D,
  opts: { alpha: number; beta: number },
): tf.Tensor2D {
  checkSupport(support, labels, numClasses);
  if (classText.shape[0] !== numClasses)
    throw new Error(
      `tipAdapterLogits: ${classText.shape[0]} class texts for ${numClasses} classes`,
    );
  return tf.tidy(() => {
    const q = l2normalize(query);
    const textCos = tf.matMul(q, l2normalize(classText), false, true) as tf.Tensor2D; // [N, C]
    const affinity = tf.matMul(q, l2normalize(support), false, true) as tf.Tensor2D; // [N, S]
    return tipFromCosines(textCos, affinity, oneHotLabels(labels, numClasses), opts);
  });
}

/** The α, β grids the cross-validated Tip-Adapter searches. */
export interface TipGrid {
  alphas: number[];
  betas: number[];
}

/** What the cross-validation chose, and its leave-one-out accuracy on the support set. */
export interface TipChoice {
  alpha: number;
  beta: number;
  /** NaN when leave-one-out was impossible (a class with one support row) */
  looAccuracy: number;
}

/** Leave-one-out hits [A·B] (α-major) of every grid point over the support rows. */
function tipLooHits(
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  supportTextCos: tf.Tensor2D,
  alphas: number[],
  betas: number[],
): Float32Array {
  const [S, C, A, B] = [support.shape[0], numClasses, alphas.length, betas.length];
  return tf.tidy(() => {
    const s = l2normalize(support);
    const dist = tf.sub(1, tf.matMul(s, s, false, true)); // [S, S]
    const notSelf = tf.sub(1, tf.eye(S)); // row i may not vote for itself
    const kern = tf.mul(expNonPositive(tf.mul(dist, tf.tensor3d(betas, [B, 1, 1]).neg())), notSelf);
    const visual = tf.matMul(tf.reshape(kern, [B * S, S]), oneHotLabels(labels, C)); // [B·S, C]
    const text = tf.reshape(tf.mul(supportTextCos, TIP_TEXT_SCALE), [1, 1, S, C]);
    const logits = tf.add(
      text,
      tf.mul(tf.tensor4d(alphas, [A, 1, 1, 1]), tf.reshape(visual, [1, B, S, C])),
    ); // [A, B, S, C]
    const hit = tf.equal(tf.argMax(logits, -1), tf.tensor1d(labels, 'int32')); // [A, B, S]
    return tf.sum(tf.cast(hit, 'float32'), -1).dataSync() as Float32Array; // [A, B]
  });
}

/**
 * Tip-Adapter's α, β chosen on the support set only: every grid point (plus the
 * fallback) scores the support rows leave-one-out, each row classified by the
 * zero-shot cosines `supportTextCos` [S, C] and the cache of the other rows.
 * Most hits wins; on a tie the fallback (the published default) if it is among
 * the best, else the smallest α, then the smallest β. The query set is not an
 * argument, so its labels cannot leak in. With a class of a single support row
 * (k = 1) leave-one-out would empty that class's cache, so the fallback is returned.
 */
export function crossValidateTip(
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  supportTextCos: tf.Tensor2D,
  grid: TipGrid,
  fallback: { alpha: number; beta: number } = TIP_DEFAULTS,
): TipChoice {
  checkSupport(support, labels, numClasses);
  const counts = new Array(numClasses).fill(0);
  for (const y of labels) counts[y]++;
  if (counts.some((n) => n < 2)) return { ...fallback, looAccuracy: Number.NaN };
  const up = (xs: number[], x: number) => [...new Set([...xs, x])].sort((a, b) => a - b);
  const alphas = up(grid.alphas, fallback.alpha);
  const betas = up(grid.betas, fallback.beta);
  const hits = tipLooHits(support, labels, numClasses, supportTextCos, alphas, betas);
  let best = 0;
  for (let i = 1; i < hits.length; i++) if (hits[i] > hits[best]) best = i;
  const fb = alphas.indexOf(fallback.alpha) * betas.length + betas.indexOf(fallback.beta);
  if (hits[fb] === hits[best]) best = fb;
  const [alpha, beta] = [alphas[Math.floor(best / betas.length)], betas[best % betas.length]];
  return { alpha, beta, looAccuracy: hits[best] / labels.length };
}

/**
 * Nearest-neighbour voting over the k most cosine-similar support rows of each
 * query (see `voteLogits` for the three votes; ties in similarity go to the
 * lower support index). Returns the votes [N, C].
 */
export function knnLogits(
  query: tf.Tensor2D,
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  opts: { k: number; vote: Vote; temperature?: number },
): tf.Tensor2D {
  checkSupport(support, labels, numClasses);
  const affinity = tf.tidy(() =>
    tf.matMul(l2normalize(query), l2normalize(support), false, true),
  ) as tf.Tensor2D;
  const nb = nearestNeighbours(affinity, opts.k);
  affinity.dispose();
  return voteLogits(nb, labels, numClasses, opts.vote, opts.temperature);
}
