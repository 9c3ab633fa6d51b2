/**
 * Evaluation on the task suite and on held-out image-caption pairs:
 *  - zero-shot: a class's text embedding is the normalised mean of its prompt
 *    templates' normalised embeddings (CLIP's prompt ensembling); predict argmax cos.
 *  - k-shot prototypes: the training-free few-shot baseline LIxP is judged by —
 *    a class prototype is the normalised mean of k support image embeddings.
 *  - retrieval: image→text and text→image recall@1/@5 over N pairs.
 * Every score comes from the model's objective (its `similarity` and
 * `imageVectors`), so Llip's per-caption mixing is evaluated as it was trained.
 */
import * as tf from '@tensorflow/tfjs';
import type { Tokenizer } from '../data/tokenizer';
import type { Batch, LabelledImages, Task } from '../data/types';
import { IMAGE_SIZE } from '../data/types';
import type { TowerOutputs } from '../model/index';
import { l2normalize } from '../model/ops';
import { type Model, objectiveOfModel, towerOutputs } from '../objectives/model';
import { unitMeanPerClass } from '../objectives/objective';
import { Rng } from '../rng';

/** Concatenates per-chunk tower outputs key by key (and frees the parts). */
function concatOutputs(parts: TowerOutputs[]): TowerOutputs {
  const out: Record<string, tf.Tensor> = {};
  for (const k of Object.keys(parts[0]) as (keyof TowerOutputs)[])
    out[k] = tf.concat(parts.map((p) => p[k] as tf.Tensor));
  parts.forEach((p) => {
    tf.dispose(Object.values(p));
  });
  return out as TowerOutputs;
}

/** The image side of the tower outputs for a flat image array, `chunk` images at a time. */
export function imageSide(model: Model, images: Float32Array, chunk = 256): TowerOutputs {
  const px = IMAGE_SIZE * IMAGE_SIZE * 3;
  const n = images.length / px;
  const parts: TowerOutputs[] = [];
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    const x = images.subarray(s * px, (s + m) * px);
    parts.push(
      tf.tidy(() => towerOutputs(model, tf.tensor4d(x, [m, IMAGE_SIZE, IMAGE_SIZE, 3]), null, m)),
    );
  }
  return concatOutputs(parts);
}

/** The text side of the tower outputs for token rows [N, L], `chunk` rows at a time. */
export function textSide(model: Model, tokens: Int32Array, chunk = 512): TowerOutputs {
  const L = model.config.text.contextLength;
  const n = tokens.length / L;
  const parts: TowerOutputs[] = [];
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    parts.push(tf.tidy(() => towerOutputs(model, null, tokens.subarray(s * L, (s + m) * L), m)));
  }
  return concatOutputs(parts);
}

/** Unit image vectors [N, E] (the objective's: prototypes and neighbours use them). */
export function embedImages(model: Model, images: Float32Array, chunk = 256): tf.Tensor2D {
  const side = imageSide(model, images, chunk);
  const out = tf.tidy(() =>
    objectiveOfModel(model).imageVectors(side, model.params, model.objective),
  );
  tf.dispose(Object.values(side));
  return out;
}

/** Unit text embeddings [N, E] of token rows [N, L]. */
export function embedTexts(model: Model, tokens: Int32Array, chunk = 512): tf.Tensor2D {
  const side = textSide(model, tokens, chunk);
  const out = l2normalize(side.text!);
  tf.dispose(Object.values(side));
  return out;
}

/** One text side per class, from its prompt templates (the objective's ensembling). */
export function classTexts(
  model: Model,
  tok: Tokenizer,
  classNames: string[],
  templates: string[],
): TowerOutputs {
  const prompts = classNames.flatMap((c) => templates.map((t) => t.replace('{}', c)));
  const side = textSide(model, tok.encodeBatch(prompts)); // C·T rows
  const ensemble = objectiveOfModel(model).classTexts ?? unitMeanPerClass;
  const [C, T] = [classNames.length, templates.length];
  const out = tf.tidy(() => ensemble(side, C, T, model.params, model.objective));
  tf.dispose(Object.values(side));
  return out;
}

/** Scores [N, M] of the images against the texts, as the objective defines them. */
export function scores(model: Model, img: TowerOutputs, txt: TowerOutputs): tf.Tensor2D {
  return tf.tidy(() => objectiveOfModel(model).similarity(img, txt, model.params, model.objective));
}

/** Fraction of rows of `scores` [N, C] whose largest entry is at the label. */
export function accuracyOfScores(s: tf.Tensor2D, labels: Int32Array): number {
  const pred = tf.tidy(() => tf.argMax(s, 1).dataSync());
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / labels.length;
}

/** Fraction of rows of `emb` [N, E] whose nearest class vector in `weights` [C, E] is the label. */
export function accuracyOf(emb: tf.Tensor2D, weights: tf.Tensor2D, labels: Int32Array): number {
  const s = tf.matMul(emb, weights, false, true) as tf.Tensor2D;
  const acc = accuracyOfScores(s, labels);
  s.dispose();
  return acc;
}

/** Zero-shot accuracy on a task; `query` is the query images' side when already computed. */
export function zeroShotAccuracy(
  model: Model,
  tok: Tokenizer,
  task: Task,
  query?: TowerOutputs,
): number {
  const q = query ?? imageSide(model, task.query.images);
  const w = classTexts(model, tok, task.classNames, task.templates);
  const s = scores(model, q, w);
  const acc = accuracyOfScores(s, task.query.labels);
  tf.dispose([s, ...Object.values(w), ...(query ? [] : Object.values(q))]);
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
    const qSide = imageSide(model, task.query.images);
    const q = tf.tidy(() =>
      objectiveOfModel(model).imageVectors(qSide, model.params, model.objective),
    );
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
    const zeroShot = zeroShotAccuracy(model, tok, task, qSide);
    tf.dispose([q, ...(s ? [s] : []), ...Object.values(qSide)]);
    return { task: task.name, classes: C, chance: task.chance, zeroShot, fewShot };
  });
}

export interface Retrieval {
  i2t: { r1: number; r5: number };
  t2i: { r1: number; r5: number };
}

/** Recall@1/@5 for N image-caption pairs where pair i matches caption i. */
export function retrieval(model: Model, batch: Batch): Retrieval {
  const img = imageSide(model, batch.images);
  const txt = textSide(model, batch.tokens);
  const sim = scores(model, img, txt); // [N, N]
  const simT = tf.tidy(() => tf.transpose(sim));
  const out = { i2t: recallAt(sim, [1, 5]), t2i: recallAt(simT, [1, 5]) };
  tf.dispose([sim, simT, ...Object.values(img), ...Object.values(txt)]);
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
