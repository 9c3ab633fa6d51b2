/**
 * Singular-value spectra of visual features (Jing et al., ICLR 2022, "Understanding
 * dimensional collapse in contrastive self-supervised learning"; the Llip paper's
 * Figure 5): embed a fixed evaluation set, L2-normalise the rows, centre them,
 * take the covariance and its singular values in descending order. A spectrum
 * that falls off a cliff means the features use few directions (collapse); the
 * effective rank (Roy & Vetterli 2007) is its one-number summary.
 * Introduced in notebook 04.
 *
 * Method: TF.js has no SVD (tfjs#110), and none is needed: the covariance C is
 * symmetric positive semi-definite, so its singular values are its eigenvalues.
 * Everything after reading the features runs in JS float64: the normalisation,
 * centring and C = XcᵀXc / (N − 1) on the CPU, then cyclic Jacobi rotations on
 * the D×D matrix (D ≤ 128 here: microseconds to milliseconds), with the
 * Demmel–Veselić stopping rule that keeps small eigenvalues relatively accurate —
 * the tail is what a collapse plot is about. Tested against torch.linalg.svdvals
 * in float64 (test/reference/make_golden.py).
 */
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../objectives/model';
import { imageSide } from './evaluate';

/** C = XcᵀXc / (N − 1) of rows L2-normalised (ε = 1e-12, as F.normalize) then centred: [D·D] float64. */
function covariance(x: Float32Array, N: number, D: number): Float64Array {
  const xc = new Float64Array(N * D);
  const mean = new Float64Array(D);
  for (let i = 0; i < N; i++) {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += x[i * D + d] ** 2;
    const inv = 1 / Math.max(Math.sqrt(sq), 1e-12);
    for (let d = 0; d < D; d++) {
      xc[i * D + d] = x[i * D + d] * inv;
      mean[d] += xc[i * D + d] / N;
    }
  }
  for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) xc[i * D + d] -= mean[d];
  const c = new Float64Array(D * D);
  for (let i = 0; i < N; i++)
    for (let a = 0; a < D; a++) {
      const xa = xc[i * D + a];
      if (xa !== 0) for (let b = a; b < D; b++) c[a * D + b] += xa * xc[i * D + b];
    }
  for (let a = 0; a < D; a++)
    for (let b = a; b < D; b++) {
      c[a * D + b] /= N - 1;
      c[b * D + a] = c[a * D + b];
    }
  return c;
}

/** One Jacobi rotation zeroing A[p, q] of the symmetric n×n matrix A (in place). */
function rotate(A: Float64Array, n: number, p: number, q: number): void {
  const apq = A[p * n + q];
  const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
  const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    const [akp, akq] = [A[k * n + p], A[k * n + q]];
    A[k * n + p] = c * akp - s * akq;
    A[k * n + q] = s * akp + c * akq;
  }
  for (let k = 0; k < n; k++) {
    const [apk, aqk] = [A[p * n + k], A[q * n + k]];
    A[p * n + k] = c * apk - s * aqk;
    A[q * n + k] = s * apk + c * aqk;
  }
}

/**
 * Eigenvalues of a symmetric n×n matrix (row-major float64) by cyclic Jacobi:
 * sweep over every off-diagonal entry, rotating it to zero unless it is already
 * negligible against its diagonal pair (|a_pq| ≤ ε·√|a_pp·a_qq|); stop after a
 * sweep that rotates nothing.
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const A = Float64Array.from(a);
  const eps = 2 ** -53;
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = Math.abs(A[p * n + q]);
        if (apq === 0 || apq <= eps * Math.sqrt(Math.abs(A[p * n + p] * A[q * n + q]))) continue;
        rotate(A, n, p, q);
        rotated = true;
      }
    if (!rotated) break;
  }
  return Float64Array.from({ length: n }, (_, i) => A[i * n + i]);
}

/**
 * The singular values of the covariance of x's rows, L2-normalised then centred:
 * C = XcᵀXc / (N − 1), D values in descending order. x: [N, D], N ≥ 2.
 */
export function covarianceSpectrum(x: tf.Tensor2D): Float32Array {
  const [N, D] = x.shape;
  if (N < 2) throw new Error(`covarianceSpectrum: need at least 2 rows, got ${N}`);
  const eig = symmetricEigenvalues(covariance(x.dataSync() as Float32Array, N, D), D);
  // C is PSD: its singular values are its eigenvalues; rounding may leave tiny negatives
  return Float32Array.from(Array.from(eig, Math.abs).sort((p, q) => q - p));
}

/** exp(−Σ p log p) with p = s / Σ s (0·log 0 = 0): between 1 (one direction) and D (flat). */
export function effectiveRank(singularValues: Float32Array): number {
  let total = 0;
  for (const s of singularValues) total += s;
  if (!(total > 0)) throw new Error('effectiveRank: the singular values sum to zero');
  let h = 0;
  for (const s of singularValues) {
    const p = s / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

/**
 * The features a spectrum is taken of, for N images [N·32·32·3]: the image
 * tower's output the objective reads — the pooled, projected embedding [N, E]
 * (SigLIP, CLIP, LIxP), or for models with mixture tokens the K tokens
 * concatenated along the batch axis [N·K, width], as the paper does for its
 * learned-query baseline and Llip.
 */
export function spectrumFeatures(model: Model, images: Float32Array): tf.Tensor2D {
  const side = imageSide(model, images);
  const out = tf.tidy(() => {
    if (!side.mixtureTokens) return tf.clone(side.image!);
    const [n, K, w] = side.mixtureTokens.shape;
    return tf.reshape(side.mixtureTokens, [n * K, w]) as tf.Tensor2D;
  });
  tf.dispose(Object.values(side));
  return out;
}
