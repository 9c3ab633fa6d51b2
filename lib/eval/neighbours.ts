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

/** Are the kk values of row i strictly decreasing (no tie, sorted)? */
function strictlyDecreasing(v: ArrayLike<number>, i: number, kk: number): boolean {
  for (let r = i * kk + 1; r < i * kk + kk; r++) if (!(v[r - 1] > v[r])) return false;
  return true;
}

/** Insertion sort of sim/idx[o … o+g) by similarity, then index (cheap: nearly sorted already). */
function sortRun(sim: Float32Array, idx: Int32Array, o: number, g: number): void {
  for (let p = o + 1; p < o + g; p++) {
    const [x, j] = [sim[p], idx[p]];
    let q = p;
    for (; q > o && (sim[q - 1] < x || (sim[q - 1] === x && idx[q - 1] > j)); q--) {
      sim[q] = sim[q - 1];
      idx[q] = idx[q - 1];
    }
    sim[q] = x;
    idx[q] = j;
  }
}

/**
 * Row i exactly, from topk's k + 1 values (a multiset no tie order changes):
 * with t the k-th best value, the columns above t are topk's (re-sorted by
 * similarity, then index); if the (k+1)-th value is t too, the places left
 * go to the columns equal to t in index order, read from the row `a`.
 */
function exactRow(
  v: ArrayLike<number>,
  ix: ArrayLike<number>,
  i: number,
  kk: number,
  k: number,
  row: () => Float32Array,
  out: Neighbours,
): void {
  const [o, b] = [i * k, i * kk];
  let sorted = true; // topk sorts values; only equal ones may come in any order
  for (let r = b + 1; r < b + kk; r++) sorted &&= v[r - 1] >= v[r];
  const vals = sorted ? v : Array.from({ length: kk }, (_, r) => v[b + r]).sort((x, y) => y - x);
  const at = sorted ? b : 0;
  const t = vals[at + k - 1];
  const boundary = kk > k && vals[at + k] === t;
  let g = 0;
  for (let r = 0; r < kk && g < k; r++)
    if (v[b + r] > t || (!boundary && v[b + r] === t)) {
      out.sim[o + g] = v[b + r];
      out.index[o + g++] = ix[b + r];
    }
  sortRun(out.sim, out.index, o, g);
  if (g === k) return;
  const a = row();
  const S = a.length / out.n;
  for (let j = 0; j < S && g < k; j++)
    if (a[i * S + j] === t) {
      out.sim[o + g] = t;
      out.index[o + g++] = j;
    }
}

/**
 * The k most similar columns of each row of `affinity` [N, S], most similar
 * first; ties in similarity go to the lower column index. TF.js's topk (native
 * to the backend) does not promise an order among equal values, so it is asked
 * for one neighbour more, and a row whose k + 1 best values are not strictly
 * decreasing (duplicate support images tie exactly; the pools draw with
 * replacement) is put right by `exactRow`.
 */
export function nearestNeighbours(affinity: tf.Tensor2D, k: number): Neighbours {
  const [n, S] = affinity.shape;
  if (!(Number.isInteger(k) && k >= 1 && k <= S))
    throw new Error(`nearestNeighbours: k must be an integer in [1, ${S}], got ${k}`);
  const kk = Math.min(k + 1, S);
  const top = tf.topk(affinity, kk);
  const [v, ix] = [top.values.dataSync(), top.indices.dataSync()];
  tf.dispose([top.values, top.indices]);
  const out = { n, k, index: new Int32Array(n * k), sim: new Float32Array(n * k) };
  let a: Float32Array | null = null;
  const row = () => {
    a ??= affinity.dataSync() as Float32Array;
    return a;
  };
  for (let i = 0; i < n; i++) {
    if (!strictlyDecreasing(v, i, kk)) {
      exactRow(v, ix, i, kk, k, row, out);
      continue;
    }
    out.index.set(ix.subarray(i * kk, i * kk + k), i * k);
    out.sim.set(v.subarray(i * kk, i * kk + k), i * k);
  }
  return out;
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
