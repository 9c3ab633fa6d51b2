/**
 * Nearest neighbours for kNN voting: the k most similar support rows of each
 * query (ties to the lower support index) and the three votes of the LIxP
 * paper's Table 1 (plurality, rank-weighted, softmax-weighted).
 */
import * as tf from '@tensorflow/tfjs';

export type Vote = 'plurality' | 'rank' | 'softmax';

/** The k nearest support rows of each query row, most similar first. */
export interface Neighbours {
  n: number;
  k: number;
  /** support row of neighbour r of query i at i·k + r */
  index: Int32Array;
  /** its cosine */
  sim: Float32Array;
}

/** Is neighbour (va, ia) worse than (vb, ib)? Lower similarity, or equal and a later column. */
const worse = (va: number, ia: number, vb: number, ib: number) => va < vb || (va === vb && ia > ib);

/** Restores the heap val/idx[o … o+size) below slot p (root = the worst kept neighbour). */
function siftDown(val: Float32Array, idx: Int32Array, o: number, p: number, size: number): void {
  const v = val[o + p];
  const i = idx[o + p];
  for (;;) {
    let c = 2 * p + 1;
    if (c >= size) break;
    if (c + 1 < size && worse(val[o + c + 1], idx[o + c + 1], val[o + c], idx[o + c])) c++;
    if (!worse(val[o + c], idx[o + c], v, i)) break;
    val[o + p] = val[o + c];
    idx[o + p] = idx[o + c];
    p = c;
  }
  val[o + p] = v;
  idx[o + p] = i;
}

/**
 * The k best of row a[r … r+S) into val/idx[o … o+k), best first: a size-k heap
 * whose root is the worst kept neighbour, then heapsort.
 */
function topOfRow(
  a: Float32Array,
  r: number,
  S: number,
  k: number,
  val: Float32Array,
  idx: Int32Array,
  o: number,
) {
  for (let j = 0; j < k; j++) {
    val[o + j] = a[r + j];
    idx[o + j] = j;
  }
  for (let p = (k >> 1) - 1; p >= 0; p--) siftDown(val, idx, o, p, k);
  for (let j = k; j < S; j++) {
    if (!(a[r + j] > val[o])) continue; // an equal later column is worse than the root
    val[o] = a[r + j];
    idx[o] = j;
    siftDown(val, idx, o, 0, k);
  }
  for (let end = k - 1; end > 0; end--) {
    const v = val[o + end]; // the root (the worst left) goes to the back
    const i = idx[o + end];
    val[o + end] = val[o];
    idx[o + end] = idx[o];
    val[o] = v;
    idx[o] = i;
    siftDown(val, idx, o, 0, end);
  }
}

/** Does row i of the k' = `kk` sorted values hold two equal values, or ones out of order? */
function hasTieOrDisorder(
  v: Float32Array | Int32Array | Uint8Array,
  i: number,
  kk: number,
): boolean {
  for (let r = i * kk + 1; r < i * kk + kk; r++) if (!(v[r - 1] > v[r])) return true;
  return false;
}

/**
 * The k most similar columns of each row of `affinity` [N, S]. Ties in
 * similarity go to the lower column index. TF.js's topk (fast, native to the
 * backend) does not promise an order among equal values, so it is asked for
 * one neighbour more; a row whose k + 1 best values are not strictly
 * decreasing (duplicate support images tie exactly: the pools draw with
 * replacement) is redone exactly in JavaScript.
 */
export function nearestNeighbours(affinity: tf.Tensor2D, k: number): Neighbours {
  const [n, S] = affinity.shape;
  if (!(Number.isInteger(k) && k >= 1 && k <= S))
    throw new Error(`nearestNeighbours: k must be an integer in [1, ${S}], got ${k}`);
  const kk = Math.min(k + 1, S);
  const top = tf.topk(affinity, kk);
  const [v, ix] = [top.values.dataSync(), top.indices.dataSync()];
  tf.dispose([top.values, top.indices]);
  const index = new Int32Array(n * k);
  const sim = new Float32Array(n * k);
  let a: Float32Array | null = null;
  for (let i = 0; i < n; i++) {
    if (hasTieOrDisorder(v, i, kk)) {
      a ??= affinity.dataSync() as Float32Array;
      topOfRow(a, i * S, S, k, sim, index, i * k);
      continue;
    }
    for (let r = 0; r < k; r++) {
      sim[i * k + r] = v[i * kk + r];
      index[i * k + r] = ix[i * kk + r];
    }
  }
  return { n, k, index, sim };
}

/**
 * Votes [N, C] of the neighbours: plurality adds 1 per neighbour to its class,
 * rank adds 1/r for the neighbour of rank r (1-based), softmax adds
 * exp(sim / temperature) (float32: keep temperature >= 0.012 so exp(1/T) is finite).
 */
export function voteLogits(
  nb: Neighbours,
  labels: Int32Array,
  numClasses: number,
  vote: Vote,
  temperature = 0.07,
): tf.Tensor2D {
  const out = new Float64Array(nb.n * numClasses);
  for (let i = 0; i < nb.n; i++)
    for (let r = 0; r < nb.k; r++) {
      const j = i * nb.k + r;
      const w =
        vote === 'plurality'
          ? 1
          : vote === 'rank'
            ? 1 / (r + 1)
            : Math.exp(nb.sim[j] / temperature);
      out[i * numClasses + labels[nb.index[j]]] += w;
    }
  return tf.tensor2d(Float32Array.from(out), [nb.n, numClasses]);
}
