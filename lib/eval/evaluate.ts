/**
 * Evaluation on the task suite and on held-out image-caption pairs:
 *  - zero-shot: a class's text embedding is the normalised mean of its prompt
 *    templates' normalised embeddings (CLIP's prompt ensembling); predict argmax cos.
 *  - k-shot prototypes: the training-free few-shot baseline LIxP is judged by —
 *    a class prototype is the normalised mean of k support image embeddings.
 *  - retrieval: image→text and text→image recall@1/@5 over N pairs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Tokenizer } from '../data/tokenizer';
import type { Batch, LabelledImages, Task } from '../data/types';
import { IMAGE_SIZE } from '../data/types';
import { encodeImages, encodeTexts, type Model } from '../model/index';
import { l2normalize } from '../model/ops';
import { Rng } from '../rng';

/** Unit image embeddings [N, E] of a flat image array, computed `chunk` at a time. */
export function embedImages(model: Model, images: Float32Array, chunk = 256): tf.Tensor2D {
  const px = IMAGE_SIZE * IMAGE_SIZE * 3;
  const n = images.length / px;
  const parts: tf.Tensor2D[] = [];
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    parts.push(
      tf.tidy(() =>
        encodeImages(
          model,
          tf.tensor4d(images.subarray(s * px, (s + m) * px), [m, IMAGE_SIZE, IMAGE_SIZE, 3]),
        ),
      ),
    );
  }
  const out = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

/** Unit text embeddings [N, E] of token rows [N, L], `chunk` rows at a time. */
export function embedTexts(model: Model, tokens: Int32Array, chunk = 512): tf.Tensor2D {
  const L = model.config.text.contextLength;
  const n = tokens.length / L;
  const parts: tf.Tensor2D[] = [];
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    parts.push(encodeTexts(model, tokens.subarray(s * L, (s + m) * L), m));
  }
  const out = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

/** Zero-shot class embeddings [C, E] with prompt-template averaging. */
export function zeroShotWeights(
  model: Model,
  tok: Tokenizer,
  classNames: string[],
  templates: string[],
): tf.Tensor2D {
  const prompts = classNames.flatMap((c) => templates.map((t) => t.replace('{}', c)));
  return tf.tidy(() => {
    const z = embedTexts(model, tok.encodeBatch(prompts)); // [C·T, E]
    const E = z.shape[1];
    return l2normalize(
      tf.mean(tf.reshape(z, [classNames.length, templates.length, E]), 1) as tf.Tensor2D,
    );
  });
}

/** Fraction of rows of `emb` [N, E] whose nearest class vector in `weights` [C, E] is the label. */
export function accuracyOf(emb: tf.Tensor2D, weights: tf.Tensor2D, labels: Int32Array): number {
  const pred = tf.tidy(() => tf.argMax(tf.matMul(emb, weights, false, true), 1).dataSync());
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / labels.length;
}

export function zeroShotAccuracy(
  model: Model,
  tok: Tokenizer,
  task: Task,
  queryEmb?: tf.Tensor2D,
): number {
  const w = zeroShotWeights(model, tok, task.classNames, task.templates);
  const q = queryEmb ?? embedImages(model, task.query.images);
  const acc = accuracyOf(q, w, task.query.labels);
  tf.dispose(queryEmb ? [w] : [w, q]);
  return acc;
}

/** Indices of k random examples of each class (without replacement). */
export function sampleShots(
  labels: Int32Array,
  numClasses: number,
  k: number,
  rng: Rng,
): number[][] {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((y, i) => {
    byClass[y].push(i);
  });
  return byClass.map((idx, c) => {
    if (idx.length < k) throw new Error(`class ${c} has ${idx.length} support examples, need ${k}`);
    return rng.shuffle(idx.slice()).slice(0, k);
  });
}

/** Class prototypes [C, E]: normalised mean of the chosen support embeddings. */
export function prototypes(supportEmb: tf.Tensor2D, shots: number[][]): tf.Tensor2D {
  return tf.tidy(() => {
    const N = supportEmb.shape[0];
    const sel = new Float32Array(shots.length * N); // [C, N] averaging matrix
    shots.forEach((idx, c) => {
      for (const i of idx) sel[c * N + i] = 1 / idx.length;
    });
    return l2normalize(tf.matMul(tf.tensor2d(sel, [shots.length, N]), supportEmb));
  });
}

/** Mean k-shot prototype accuracy over `episodes` random support draws. */
export function fewShotAccuracy(
  supportEmb: tf.Tensor2D,
  support: LabelledImages,
  queryEmb: tf.Tensor2D,
  query: LabelledImages,
  numClasses: number,
  k: number,
  episodes: number,
  seed: number,
): number {
  const rng = new Rng(seed);
  let sum = 0;
  for (let e = 0; e < episodes; e++) {
    const protos = prototypes(supportEmb, sampleShots(support.labels, numClasses, k, rng));
    sum += accuracyOf(queryEmb, protos, query.labels);
    protos.dispose();
  }
  return sum / episodes;
}

export interface TaskResult {
  task: string;
  classes: number;
  chance: number;
  zeroShot: number;
  /** k → mean prototype accuracy */
  fewShot: Record<number, number>;
}

export interface SuiteOptions {
  shots?: number[];
  episodes?: number;
  seed?: number;
}

/** Zero-shot and k-shot prototype accuracy on every task. */
export function evaluateSuite(
  model: Model,
  tok: Tokenizer,
  tasks: Task[],
  o: SuiteOptions = {},
): TaskResult[] {
  const shots = o.shots ?? [1, 2, 4, 8, 16];
  return tasks.map((task) => {
    const q = embedImages(model, task.query.images);
    const s = shots.length ? embedImages(model, task.support.images) : null;
    const C = task.classNames.length;
    const fewShot: Record<number, number> = {};
    for (const k of shots)
      fewShot[k] = fewShotAccuracy(
        s!,
        task.support,
        q,
        task.query,
        C,
        k,
        o.episodes ?? 5,
        o.seed ?? 0,
      );
    const zeroShot = zeroShotAccuracy(model, tok, task, q);
    tf.dispose(s ? [q, s] : [q]);
    return { task: task.name, classes: C, chance: task.chance, zeroShot, fewShot };
  });
}

export interface Retrieval {
  i2t: { r1: number; r5: number };
  t2i: { r1: number; r5: number };
}

/** Recall@1/@5 for N image-caption pairs where pair i matches caption i. */
export function retrieval(model: Model, batch: Batch): Retrieval {
  const zi = embedImages(model, batch.images);
  const zt = embedTexts(model, batch.tokens);
  const sim = tf.tidy(() => tf.matMul(zi, zt, false, true)); // [N, N]
  const simT = tf.tidy(() => tf.transpose(sim));
  const out = { i2t: recallAt(sim, [1, 5]), t2i: recallAt(simT, [1, 5]) };
  tf.dispose([zi, zt, sim, simT]);
  return { i2t: { r1: out.i2t[0], r5: out.i2t[1] }, t2i: { r1: out.t2i[0], r5: out.t2i[1] } };
}

/** For each row i, is the diagonal entry among the row's top k? Returns the rate per k. */
function recallAt(sim: tf.Tensor, ks: number[]): number[] {
  const maxK = Math.max(...ks);
  const { values, indices } = tf.topk(sim, maxK);
  const idx = indices.dataSync();
  tf.dispose([values, indices]);
  const N = sim.shape[0];
  return ks.map((k) => {
    let hit = 0;
    for (let i = 0; i < N; i++)
      for (let j = 0; j < k; j++)
        if (idx[i * maxK + j] === i) {
          hit++;
          break;
        }
    return hit / N;
  });
}
