/**
 * Representational shift (after Miyanishi & Nguyen, "Multimodal Contrastive
 * In-Context Learning", 2024: semantically similar context examples move a
 * model's representations more than unrelated ones). Here: how far LIxP's
 * contextualiser moves an image embedding,
 *
 *   shift_i = 1 − cos(x̂ctx_i, x_i),   X̂ctx = contextualize(X, log τctx)  (eq. X̂ctx, self masked)
 *
 * when its context X holds images of its own identity ("same identity": a few
 * identities, several images each) versus a random draw of the same size. Beside
 * it, the attention's weight on same-identity images, and whether the move goes
 * towards the image's own identity: cos(x̂ctx_i, μ_id) − cos(x_i, μ_id), with μ_id
 * the normalised mean of the identity's unit embeddings over all N images. A model trained with
 * context (LIxP) should move its embeddings towards their identity when the
 * context offers it; SigLIP's embeddings passed through the same contextualiser
 * are the baseline.
 */
import * as tf from '@tensorflow/tfjs';
import { contextAttention } from '../objectives/lixp';
import { Rng } from '../rng';
import { meanCI } from '../stats';

export interface ShiftOptions {
  logTauCtx: number; // log τctx of the contextualiser (a LIxP run's learned value)
  contextSize?: number; // images per context (default 32)
  perIdentity?: number; // images of each identity in a same-identity context (default 4)
  contexts?: number; // contexts of each kind (default 64)
  seed?: number;
}

/** Mean ± 95% CI over contexts of one measure. */
export type Measured = ReturnType<typeof meanCI>;

export interface Shift {
  /** 1 − cos(x̂ctx, x), contexts of few identities / random contexts */
  sameIdentity: Measured;
  random: Measured;
  /** the attention's total weight on other images of the query's identity, same two kinds */
  weightSameIdentity: Measured;
  weightRandom: Measured;
  /** cos(x̂ctx, μ_id) − cos(x, μ_id): > 0 when the context pulls an image towards its identity */
  towardSameIdentity: Measured;
  towardRandom: Measured;
}

/** `k` distinct indices of `pool`, uniformly (partial Fisher–Yates). */
function draw(pool: number[], k: number, rng: Rng): number[] {
  const a = [...pool];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(a.length - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}

/**
 * Index sets of the two kinds of context over N images with identities `identity`:
 * `contextSize / perIdentity` identities with `perIdentity` images each, and
 * `contextSize` images at random.
 */
export function shiftContexts(
  identity: Int32Array,
  o: Required<Omit<ShiftOptions, 'logTauCtx'>>,
): { same: number[][]; random: number[][] } {
  const byId = new Map<number, number[]>();
  identity.forEach((id, i) => {
    byId.set(id, [...(byId.get(id) ?? []), i]);
  });
  const ids = [...byId.keys()].filter((id) => byId.get(id)!.length >= o.perIdentity);
  const groups = o.contextSize / o.perIdentity;
  if (!Number.isInteger(groups) || groups < 1)
    throw new Error(`shift: perIdentity ${o.perIdentity} must divide contextSize ${o.contextSize}`);
  if (ids.length < groups)
    throw new Error(
      `shift: ${groups} identities with >= ${o.perIdentity} images needed, the images have ${ids.length}`,
    );
  if (identity.length < o.contextSize)
    throw new Error(`shift: ${identity.length} images, a context needs ${o.contextSize}`);
  const rng = new Rng(o.seed);
  const all = Array.from(identity, (_, i) => i);
  const same: number[][] = [];
  const random: number[][] = [];
  for (let c = 0; c < o.contexts; c++) {
    same.push(draw(ids, groups, rng).flatMap((id) => draw(byId.get(id)!, o.perIdentity, rng)));
    random.push(draw(all, o.contextSize, rng));
  }
  return { same, random };
}

/** Unit rows. */
const unit = (x: tf.Tensor2D) => tf.div(x, tf.norm(x, 2, 1, true)) as tf.Tensor2D;

/** μ_id for every identity (rows of a [maxId + 1, D] matrix): the normalised mean unit embedding. */
function identityCentres(x: tf.Tensor2D, identity: Int32Array): tf.Tensor2D {
  const ids = Math.max(...identity) + 1;
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.tensor1d(identity, 'int32'), ids).toFloat(); // [N, I]
    return unit(tf.add(tf.matMul(onehot, unit(x), true, false), 1e-12) as tf.Tensor2D); // [I, D]
  });
}

/** Mean shift, same-identity weight and move towards the identity centre of one context. */
function measure(
  x: tf.Tensor2D,
  centres: tf.Tensor2D, // [n, D]: each row's identity centre μ_id
  ids: Int32Array,
  logTauCtx: tf.Scalar,
): [number, number, number] {
  const n = ids.length;
  const [shift, toward, attention] = tf.tidy(() => {
    const A = contextAttention(x, logTauCtx); // [n, n], self masked
    const [u, c] = [unit(x), unit(tf.matMul(A, x) as tf.Tensor2D)]; // x̄, unit X̂ctx
    const cos = (a: tf.Tensor2D, b: tf.Tensor2D) => tf.sum(tf.mul(a, b), 1);
    const moved = tf.mean(tf.sub(cos(c, centres), cos(u, centres)));
    return [tf.mean(tf.sub(1, cos(c, u))).dataSync()[0], moved.dataSync()[0], A.dataSync()];
  });
  let weight = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) if (j !== i && ids[j] === ids[i]) weight += attention[i * n + j];
  return [shift as number, weight / n, toward as number];
}

/**
 * The representational shift of raw image embeddings `x` [N, D] with identities
 * `identity` [N] through the contextualiser at `logTauCtx` (header).
 */
export function representationalShift(
  x: tf.Tensor2D,
  identity: Int32Array,
  opts: ShiftOptions,
): Shift {
  const o = { contextSize: 32, perIdentity: 4, contexts: 64, seed: 0, ...opts };
  if (x.shape[0] !== identity.length)
    throw new Error(`shift: ${x.shape[0]} embeddings but ${identity.length} identities`);
  const tau = tf.scalar(o.logTauCtx);
  const centres = identityCentres(x, identity);
  const run = (sets: number[][]) => {
    const m = sets.map((idx) => {
      const ids = Int32Array.from(idx, (i) => identity[i]);
      const [rows, mu] = [tf.gather(x, idx) as tf.Tensor2D, tf.gather(centres, ids) as tf.Tensor2D];
      const r = measure(rows, mu, ids, tau);
      tf.dispose([rows, mu]);
      return r;
    });
    return [0, 1, 2].map((k) => meanCI(m.map((r) => r[k])));
  };
  const contexts = shiftContexts(identity, o);
  const [same, rand] = [run(contexts.same), run(contexts.random)];
  tf.dispose([tau, centres]);
  return {
    sameIdentity: same[0],
    random: rand[0],
    weightSameIdentity: same[1],
    weightRandom: rand[1],
    towardSameIdentity: same[2],
    towardRandom: rand[2],
  };
}
