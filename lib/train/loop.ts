/**
 * The training loop: one readable function (nanoGPT style). Each step draws a
 * fresh batch from the world, computes the contrastive loss and its gradient,
 * applies AdamW with a warmup + cosine schedule and gradient clipping, and logs a
 * per-step record (loss, lr, t, b, norms, examples/s) kept in memory and appended
 * to a JSONL file. The tensor count is checked to stay flat.
 *
 * Large batches: with `chunkSize < batchSize` the gradient is computed in chunks
 * (embedding-level gradient caching): embed all chunks without a tape, take the
 * loss gradient w.r.t. the embeddings, then back-propagate it chunk by chunk. The
 * result equals the full-batch gradient, with memory bounded by one chunk — what
 * keeps big batches inside wasm's 4 GB heap. NaN/Inf stops a run (DivergenceError).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/types';
import { IMAGE_SIZE } from '../data/types';
import { encodeImages, encodeTexts, type Model } from '../model/index';
import { clipLoss, siglipLoss } from '../objectives/siglip';
import { Progress } from '../progress';
import {
  type AdamState,
  adamwStep,
  createAdamState,
  disposeAdamState,
  lrAt,
  type OptimConfig,
} from './optim';

/** Loss of a model on unit embeddings, with the model's own learnable scalars. */
export function contrastiveLoss(
  model: Model,
  zImg: tf.Tensor2D,
  zTxt: tf.Tensor2D,
  scalars?: tf.Scalar[],
): tf.Scalar {
  const [logScale, bias] = scalars ?? [
    model.params.logScale as tf.Scalar,
    model.params.bias as tf.Scalar,
  ];
  return model.loss === 'siglip'
    ? siglipLoss(zImg, zTxt, logScale, bias)
    : clipLoss(zImg, zTxt, logScale);
}

function imagesTensor(images: Float32Array, B: number): tf.Tensor4D {
  return tf.tensor4d(images, [B, IMAGE_SIZE, IMAGE_SIZE, 3]);
}

function sliceBatch(
  batch: Batch,
  start: number,
  n: number,
): { images: Float32Array; tokens: Int32Array } {
  const px = batch.images.length / batch.size;
  const L = batch.tokens.length / batch.size;
  return {
    images: batch.images.subarray(start * px, (start + n) * px),
    tokens: batch.tokens.subarray(start * L, (start + n) * L),
  };
}

/** tf.variableGrads keys gradients by TF.js variable name; re-key them by parameter name. */
function byParamName(
  model: Model,
  names: string[],
  g: tf.NamedTensorMap,
): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const n of names) out[n] = g[model.params[n].name];
  return out;
}

/** Loss and gradients of every parameter on one batch (chunked if chunkSize < B). */
export function lossAndGrads(
  model: Model,
  batch: Batch,
  chunkSize = 0,
): { loss: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const B = batch.size;
  const names = Object.keys(model.params);
  if (chunkSize <= 0 || chunkSize >= B) {
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const zI = encodeImages(model, imagesTensor(batch.images, B));
          return contrastiveLoss(model, zI, encodeTexts(model, batch.tokens, B));
        }),
      names.map((n) => model.params[n]),
    );
    return { loss: value, grads: byParamName(model, names, grads) };
  }
  return chunkedLossAndGrads(model, batch, chunkSize);
}

function chunkedLossAndGrads(model: Model, batch: Batch, chunk: number) {
  const B = batch.size;
  const starts: number[] = [];
  for (let s = 0; s < B; s += chunk) starts.push(s);
  // 1. embeddings of the whole batch, no tape
  const zI = tf.concat(
    starts.map((s) =>
      tf.tidy(() =>
        encodeImages(
          model,
          imagesTensor(sliceBatch(batch, s, Math.min(chunk, B - s)).images, Math.min(chunk, B - s)),
        ),
      ),
    ),
  );
  const zT = tf.concat(
    starts.map((s) =>
      tf.tidy(() =>
        encodeTexts(
          model,
          sliceBatch(batch, s, Math.min(chunk, B - s)).tokens,
          Math.min(chunk, B - s),
        ),
      ),
    ),
  );
  // 2. loss gradient w.r.t. the embeddings and the loss scalars
  const scalarNames = Object.keys(model.params).filter((n) => model.params[n].rank === 0);
  const scalars = scalarNames.map((n) => model.params[n] as tf.Scalar);
  const { value: loss, grads: gz } = tf.valueAndGrads(
    (zi: tf.Tensor, zt: tf.Tensor, ...sc: tf.Tensor[]) =>
      contrastiveLoss(model, zi as tf.Tensor2D, zt as tf.Tensor2D, sc as tf.Scalar[]),
  )([zI, zT, ...scalars]);
  const grads: Record<string, tf.Tensor> = {};
  scalarNames.forEach((n, i) => {
    grads[n] = gz[2 + i];
  });
  // 3. back-propagate the embedding gradients chunk by chunk, accumulating
  const towerVars = Object.keys(model.params).filter((n) => model.params[n].rank > 0);
  for (const s of starts) {
    const n = Math.min(chunk, B - s);
    const part = sliceBatch(batch, s, n);
    const { grads: gv, value } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const gi = tf.slice(gz[0], [s, 0], [n, -1]);
          const gt = tf.slice(gz[1], [s, 0], [n, -1]);
          const a = tf.sum(tf.mul(encodeImages(model, imagesTensor(part.images, n)), gi));
          return tf.add(a, tf.sum(tf.mul(encodeTexts(model, part.tokens, n), gt))) as tf.Scalar;
        }),
      towerVars.map((name) => model.params[name]),
    );
    value.dispose();
    const g = byParamName(model, towerVars, gv);
    for (const name of towerVars) {
      const prev = grads[name];
      grads[name] = prev ? tf.add(prev, g[name]) : g[name];
      if (prev) {
        prev.dispose();
        g[name].dispose();
      }
    }
  }
  tf.dispose([zI, zT, gz[0], gz[1]]);
  return { loss, grads };
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  t: number; // exp(logScale), the inverse temperature
  b: number | null; // SigLIP bias (null for CLIP)
  gradNorm: number;
  paramNorm: number;
  updateNorm: number;
  examplesPerSec: number;
  tensors: number;
  rssMB: number; // process resident set size
  [metric: string]: number | null;
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  chunkSize?: number;
  optim: OptimConfig;
  /** draws a training batch; must be deterministic given its own seeded state */
  nextBatch: (step: number) => Batch;
  /** called every `evalEvery` steps and at the end; its numbers join the step record */
  evaluate?: (model: Model, step: number) => Record<string, number>;
  evalEvery?: number;
  historyPath?: string; // JSONL, one StepRecord per line (truncated at start)
  label?: string;
  quiet?: boolean;
  adam?: AdamState; // resume from an optimizer state
  startStep?: number;
  /** records of the steps before startStep (a resumed run); returned ahead of the new ones */
  history?: StepRecord[];
  /** called after each finished step, e.g. to write a checkpoint; sees the full history */
  afterStep?: (rec: StepRecord, adam: AdamState, history: StepRecord[]) => void;
}

/** NaN/Inf: thrown before the bad update and its checkpoint, so the last one on disk is good. */
export class DivergenceError extends Error {
  constructor(
    readonly step: number,
    readonly tensor: string,
    detail: string,
  ) {
    super(`training diverged at step ${step}: ${tensor} ${detail}`);
    this.name = 'DivergenceError';
  }
}

/** Throws naming the first non-finite tensor: x·0 is 0 for finite x, NaN for ±Inf/NaN. */
function checkFinite(step: number, loss: tf.Scalar, grads: Record<string, tf.Tensor>): void {
  const names = Object.keys(grads);
  const zero = (x: tf.Tensor) => tf.sum(tf.mul(x, 0));
  const probe = tf.tidy(() => tf.stack([zero(loss), ...names.map((n) => zero(grads[n]))]));
  const flags = probe.dataSync();
  probe.dispose();
  const bad = flags.findIndex((x) => x !== 0);
  if (bad < 0) return;
  const value = bad === 0 ? ` = ${loss.dataSync()[0]}` : ' has NaN/Inf entries';
  tf.dispose([loss, ...Object.values(grads)]);
  throw new DivergenceError(
    step,
    bad === 0 ? 'loss' : `gradient of '${names[bad - 1]}'`,
    value.trim(),
  );
}

/** One optimizer step on the next batch; returns its record (no eval, no logging). */
function trainStep(model: Model, o: TrainOptions, step: number, adam: AdamState): StepRecord {
  const t0 = performance.now();
  const batch = o.nextBatch(step);
  const { loss, grads } = lossAndGrads(model, batch, o.chunkSize);
  checkFinite(step + 1, loss, grads);
  const lr = lrAt(step, o.steps, o.optim);
  const norms = adamwStep(model.params, model.specs, grads, adam, lr, o.optim);
  const stats = tf.tidy(() => {
    const b = model.params.bias ?? tf.scalar(Number.NaN);
    return tf.concat([tf.stack([loss, tf.exp(model.params.logScale), b]), norms]);
  });
  const [lossV, tV, bV, gN, pN, uN] = Array.from(stats.dataSync());
  tf.dispose([loss, norms, stats, ...Object.values(grads)]);
  if (!Number.isFinite(pN) || !Number.isFinite(uN))
    throw new DivergenceError(step + 1, 'parameters', `are NaN/Inf after the update (lr ${lr})`);
  return {
    step: step + 1,
    loss: lossV,
    lr,
    t: tV,
    b: Number.isNaN(bV) ? null : bV,
    gradNorm: gN,
    paramNorm: pN,
    updateNorm: uN,
    examplesPerSec: batch.size / ((performance.now() - t0) / 1000),
    tensors: tf.memory().numTensors,
    rssMB: process.memoryUsage.rss() / 2 ** 20, // resident memory: flat over a healthy run
  };
}

/**
 * Train `model` in place; returns the per-step history. With `startStep`,
 * `adam` and `history` from a checkpoint (and the data Rng restored by the
 * caller) the run continues exactly as if it had never stopped.
 */
export function trainLoop(
  model: Model,
  o: TrainOptions,
): { history: StepRecord[]; adam: AdamState } {
  const adam = o.adam ?? createAdamState(model.params);
  try {
    return { history: runSteps(model, o, adam), adam };
  } catch (e) {
    if (!o.adam) disposeAdamState(adam); // ours: a failed run must not leak its moments
    throw e;
  }
}

function runSteps(model: Model, o: TrainOptions, adam: AdamState): StepRecord[] {
  const history: StepRecord[] = [...(o.history ?? [])];
  if (o.historyPath) {
    fs.mkdirSync(path.dirname(o.historyPath), { recursive: true });
    if (!o.startStep) fs.writeFileSync(o.historyPath, '');
  }
  const bar = o.quiet ? null : new Progress(o.steps, o.label ?? model.loss);
  let baseTensors = -1;
  for (let step = o.startStep ?? 0; step < o.steps; step++) {
    const rec = trainStep(model, o, step, adam);
    if (baseTensors < 0) baseTensors = rec.tensors;
    else if (rec.tensors > baseTensors)
      throw new Error(`tensor leak: ${rec.tensors - baseTensors} tensors at step ${step + 1}`);
    if (o.evaluate && ((o.evalEvery && (step + 1) % o.evalEvery === 0) || step + 1 === o.steps))
      Object.assign(rec, o.evaluate(model, step + 1));
    history.push(rec);
    if (o.historyPath) fs.appendFileSync(o.historyPath, `${JSON.stringify(rec)}\n`);
    o.afterStep?.(rec, adam, history);
    const { loss, t, examplesPerSec } = rec;
    bar?.update(
      step + 1,
      `loss ${loss.toFixed(3)} t ${t.toFixed(1)} ${examplesPerSec.toFixed(0)} ex/s`,
    );
  }
  return history;
}
