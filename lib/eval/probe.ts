/**
 * The linear probe: the trained reference beside the training-free methods
 * (the LIxP paper's Table 2). Multinomial logistic regression without bias on
 * the L2-normalised support rows, mean cross-entropy + (λ/2)·‖W‖², from W = 0
 * by a fixed number of full-batch heavy-ball steps (torch.optim.SGD with
 * momentum: buf = μ·buf + ∇, W −= lr·buf). Zero start and full batches make it
 * deterministic: no seed is needed. λ comes from stratified k-fold
 * cross-validation on the support set; every fold × λ fit and the final fits
 * run as one batched tensor program.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeProbeFit } from '../backend/native';
import { l2normalize } from '../model/ops';
import { checkSupport, oneHotLabels } from './fewshot';

export interface ProbeOptions {
  /** full-batch gradient steps of every fit */
  steps: number;
  /**
   * step size: unit rows bound the loss's curvature by 1/2 + λ (the softmax
   * Hessian's eigenvalues are <= 1/2), so lr = 1 is stable for λ <= 1 with μ = 0.9
   */
  lr: number;
  momentum: number;
  /** cross-validation folds (fewer when a class has fewer rows) */
  folds: number;
  /** the L2 strengths cross-validation picks from */
  lambdas: number[];
  /** a fixed λ: no cross-validation */
  lambda?: number;
  /** false: the op-by-op loop even where the native fit is there (it gives the same bits) */
  native?: boolean;
}

export const PROBE_DEFAULTS: ProbeOptions = {
  steps: 300,
  lr: 1,
  momentum: 0.9,
  folds: 5,
  lambdas: [1e-4, 1e-3, 1e-2, 1e-1, 1],
};

/**
 * Stratified folds: the i-th support row of a class (in row order) goes to fold
 * i mod F, with F = min(folds, fewest rows of a class). F < 2 means no
 * cross-validation is possible (one shot: holding out a class's only row
 * leaves the class without training data).
 */
export function probeFolds(
  labels: Int32Array,
  numClasses: number,
  folds: number,
): { fold: Int32Array; F: number } {
  const counts = new Array(numClasses).fill(0);
  for (const y of labels) counts[y]++;
  const F = Math.min(folds, ...counts);
  const seen = new Array(numClasses).fill(0);
  const fold = Int32Array.from(labels, (y) => seen[y]++ % Math.max(F, 1));
  return { fold, F };
}

/**
 * J fits at once: fit j minimises the mean cross-entropy over the rows with
 * mask[j][i] = 1 plus (λⱼ/2)‖Wⱼ‖². x [S, E] unit rows, y [S, C] one-hot.
 * Returns W [E, J·C] (fit j in columns j·C … j·C + C − 1).
 */
function fitMany(
  x: tf.Tensor2D,
  y: tf.Tensor2D,
  masks: Float32Array[],
  lambdas: number[],
  o: ProbeOptions,
): tf.Tensor2D {
  const [S, E] = x.shape;
  const [C, J] = [y.shape[1], masks.length];
  const weight = new Float32Array(S * J); // [S, J]: mask / rows in the fit
  masks.forEach((m, j) => {
    const n = m.reduce((a, b) => a + b, 0);
    for (let i = 0; i < S; i++) weight[i * J + j] = m[i] / n;
  });
  const lamCols = lambdas.flatMap((l) => new Array(C).fill(l)); // [J·C]
  const native = o.native === false ? null : nativeProbeFit();
  if (native) return fitNative(native, x, y, weight, lamCols, J, o);
  const lam = tf.tensor1d(lamCols);
  const w3 = tf.tensor3d(weight, [S, J, 1]);
  const y3 = tf.reshape(y, [S, 1, C]);
  let w = tf.zeros([E, J * C]) as tf.Tensor2D;
  let buf = tf.zeros([E, J * C]) as tf.Tensor2D;
  for (let t = 0; t < o.steps; t++) {
    const [w2, buf2] = tf.tidy(() => {
      const p = tf.softmax(tf.reshape(tf.matMul(x, w), [S, J, C])); // [S, J, C]
      const g = tf.reshape(tf.mul(tf.sub(p, y3), w3), [S, J * C]); // dL/dlogits
      const grad = tf.add(tf.matMul(x, g, true, false), tf.mul(w, lam)); // [E, J·C]
      const b = tf.add(tf.mul(buf, o.momentum), grad);
      return [tf.sub(w, tf.mul(b, o.lr)), b] as tf.Tensor2D[];
    });
    tf.dispose([w, buf]);
    [w, buf] = [w2, buf2];
  }
  tf.dispose([lam, w3, y3, buf]);
  return w;
}

/**
 * fitMany's steps in one native call (probeops.h), on one Float32Array holding
 * every operand: the same products, softmax and float operations in the same
 * order as the loop above, so the same bits (test/fewshot.test.ts).
 */
function fitNative(
  fit: (heap: Float32Array, ...args: number[]) => void,
  x: tf.Tensor2D,
  y: tf.Tensor2D,
  weight: Float32Array,
  lamCols: number[],
  J: number,
  o: ProbeOptions,
): tf.Tensor2D {
  const [S, E] = x.shape;
  const C = y.shape[1];
  const JC = J * C;
  // x, y, wt, lam, w, buf, z, g, grad, [lr, μ]
  const sizes = [S * E, S * C, S * J, JC, E * JC, E * JC, S * JC, S * JC, E * JC, 2];
  const offs: number[] = [];
  let end = 0;
  for (const n of sizes) {
    offs.push(end);
    end += n;
  }
  const heap = new Float32Array(end);
  heap.set(x.dataSync() as Float32Array, offs[0]);
  heap.set(y.dataSync() as Float32Array, offs[1]);
  heap.set(weight, offs[2]);
  heap.set(lamCols, offs[3]);
  heap.set([o.lr, o.momentum], offs[9]); // float32, as the op path's scalars
  fit(heap, ...offs, S, E, C, J, o.steps);
  return tf.tensor2d(heap.subarray(offs[4], offs[4] + E * JC), [E, JC]);
}

export interface ProbeResult {
  /** q̂ W [N, C] */
  logits: tf.Tensor2D;
  lambda: number;
  /** held-out accuracy of the chosen λ over the folds (NaN without cross-validation) */
  cvAccuracy: number;
}

/** Held-out hits of fit j (columns j·C…) on the rows of its fold, for every CV fit. */
function heldOutHits(z: tf.Tensor2D, labels: Int32Array, fold: Int32Array, F: number, L: number) {
  const [S, C] = [labels.length, z.shape[1] / (F * L + L)];
  const pred = tf.tidy(() => tf.argMax(tf.reshape(z, [S, F * L + L, C]), -1).dataSync());
  const hits = new Array(L).fill(0);
  for (let f = 0; f < F; f++)
    for (let l = 0; l < L; l++)
      for (let i = 0; i < S; i++)
        if (fold[i] === f && pred[i * (F * L + L) + f * L + l] === labels[i]) hits[l]++;
  return hits;
}

/**
 * Fits the probe on the support set and scores the query. λ: `o.lambda` if
 * given; else the grid value with the most held-out hits over the stratified
 * folds (ties: the larger λ, the simpler model); with one row in some class
 * (k = 1) there is nothing to hold out and the largest λ of the grid is used,
 * where the probe is closest to the class-mean classifier a single shot supports.
 */
export function linearProbe(
  query: tf.Tensor2D,
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  opts: Partial<ProbeOptions> = {},
): ProbeResult {
  const o = { ...PROBE_DEFAULTS, ...opts };
  const S = support.shape[0];
  const lambdas = o.lambda !== undefined ? [o.lambda] : [...o.lambdas].sort((a, b) => a - b);
  checkSupport(support, labels, numClasses);
  const { fold, F } =
    o.lambda !== undefined
      ? { fold: new Int32Array(S), F: 0 }
      : probeFolds(labels, numClasses, o.folds);
  const cv = F >= 2 ? F : 0;
  const masks: Float32Array[] = [];
  for (let f = 0; f < cv; f++)
    for (const _ of lambdas) masks.push(Float32Array.from(fold, (g) => (g === f ? 0 : 1)));
  for (const _ of lambdas) masks.push(new Float32Array(S).fill(1)); // the final fits
  const x = l2normalize(support);
  const y = oneHotLabels(labels, numClasses);
  const w = fitMany(x, y, masks, [...new Array(cv).fill(lambdas).flat(), ...lambdas], o);
  let pick = lambdas.length - 1; // the largest λ (grids ascend) when nothing can be held out
  let cvAccuracy = Number.NaN;
  if (cv) {
    const z = tf.matMul(x, w) as tf.Tensor2D;
    const hits = heldOutHits(z, labels, fold, cv, lambdas.length);
    z.dispose();
    for (let l = lambdas.length - 1; l >= 0; l--) if (hits[l] > hits[pick]) pick = l;
    cvAccuracy = hits[pick] / S;
  }
  const C = numClasses;
  const logits = tf.tidy(() => {
    const wPick = tf.slice(w, [0, (cv * lambdas.length + pick) * C], [-1, C]);
    return tf.matMul(l2normalize(query), wPick) as tf.Tensor2D;
  });
  tf.dispose([x, y, w]);
  return { logits, lambda: lambdas[pick], cvAccuracy };
}

/** The probe's query logits [N, C] (see `linearProbe`). */
export function linearProbeLogits(
  query: tf.Tensor2D,
  support: tf.Tensor2D,
  labels: Int32Array,
  numClasses: number,
  opts: Partial<ProbeOptions> = {},
): tf.Tensor2D {
  return linearProbe(query, support, labels, numClasses, opts).logits;
}
