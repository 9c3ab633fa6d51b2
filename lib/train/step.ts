/**
 * One training step, nanoGPT style, in numbered phases:
 *   1. batch      the next batch (deterministic given the data Rng)
 *   2. forward    the tower outputs the objective needs (objectives/model.ts)
 *   3. objective  its loss and metrics (objectives/*.ts)
 *   4. backward   gradients of every parameter; with chunkSize < B, chunk by chunk
 *   5. clip+AdamW one global-norm clip scale, one AdamW update (optim.ts), then the
 *                 objective's state (e.g. LIxP's stale memory) takes its next values
 *   6. record     loss, every metric the objective returned, norms, speed, memory
 * The step never names an objective: it logs whatever metrics come back.
 *
 * Large batches (phase 4 chunked, "gradient caching"): run the towers on every
 * chunk without a tape, take the objective's gradient w.r.t. the whole batch's
 * tower outputs and its own parameters, then back-propagate those output
 * gradients through the towers chunk by chunk. The result equals the full-batch
 * gradient with memory bounded by one chunk, which keeps big batches inside
 * wasm's 4 GB heap. NaN/Inf stops a run (DivergenceError) before the update.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/types';
import { IMAGE_SIZE } from '../data/types';
import type { TowerOutputs } from '../model/index';
import type { Params } from '../model/params';
import { batchLoss, type Model, objectiveOfModel, towerOutputs } from '../objectives/model';
import { type AdamState, adamwStep, lrAt, type OptimConfig } from './optim';

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  /** then every metric of the objective, by its name (t, b, tau1, tauCtx, ctxEntropy, …) */
  gradNorm: number;
  paramNorm: number;
  updateNorm: number;
  examplesPerSec: number;
  tensors: number;
  rssMB: number; // process resident set size
  [metric: string]: number;
}

/** What a step needs besides the model and the optimizer state. */
export interface StepOptions {
  steps: number; // total steps of the run (the schedule's length)
  chunkSize?: number; // backprop chunk; 0 or >= batch size: whole batch
  optim: OptimConfig;
  /** draws a training batch; must be deterministic given its own seeded state */
  nextBatch: (step: number) => Batch;
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

/** One optimizer step on the next batch; returns its record (no eval, no logging). */
export function trainStep(model: Model, o: StepOptions, step: number, adam: AdamState): StepRecord {
  const t0 = performance.now();
  // 1. batch
  const batch = o.nextBatch(step);
  // 2–4. forward, objective, backward
  const { loss, metrics, grads, next } = lossAndGrads(model, batch, o.chunkSize);
  checkFinite(step + 1, loss, grads, [metrics.values, ...Object.values(next)]);
  // 5. clip + AdamW, then the objective's state
  const lr = lrAt(step, o.steps, o.optim);
  const norms = adamwStep(model.params, model.specs, grads, adam, lr, o.optim);
  for (const [n, x] of Object.entries(next)) model.state[n].assign(x);
  tf.dispose(Object.values(next));
  // 6. record: one sync for the loss, the metrics and the norms
  const stats = tf.tidy(() => tf.concat([tf.reshape(loss, [1]), metrics.values, norms]));
  const v = Array.from(stats.dataSync());
  tf.dispose([loss, metrics.values, norms, stats, ...Object.values(grads)]);
  const [gradNorm, paramNorm, updateNorm] = v.slice(-3);
  if (!Number.isFinite(paramNorm) || !Number.isFinite(updateNorm))
    throw new DivergenceError(step + 1, 'parameters', `are NaN/Inf after the update (lr ${lr})`);
  const rec: StepRecord = { step: step + 1, loss: v[0], lr } as StepRecord;
  metrics.names.forEach((n, i) => {
    rec[n] = v[1 + i];
  });
  return Object.assign(rec, {
    gradNorm,
    paramNorm,
    updateNorm,
    examplesPerSec: batch.size / ((performance.now() - t0) / 1000),
    tensors: tf.memory().numTensors,
    rssMB: process.memoryUsage.rss() / 2 ** 20, // resident memory: flat over a healthy run
  });
}

/** The objective's metrics as one kept tensor [M] (one sync later), with their names. */
export interface Metrics {
  names: string[];
  values: tf.Tensor1D;
}

/** Copies the metrics out of the gradient tape's tidy (a metric may be a parameter itself). */
function keepMetrics(m: Record<string, tf.Scalar>): Metrics {
  const names = Object.keys(m);
  const values = names.length ? tf.stack(names.map((n) => m[n])) : tf.tensor1d([]);
  return { names, values: tf.keep(values) as tf.Tensor1D };
}

/** The objective's next state, kept out of the tape's tidy (copies: a value may be a state tensor). */
function keepNext(next: Record<string, tf.Tensor> = {}): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(next).map(([n, x]) => [n, tf.keep(tf.clone(x))]));
}

/** What phases 2–4 hand to the update: loss, metrics, gradients and the objective's next state. */
export interface LossAndGrads {
  loss: tf.Scalar;
  metrics: Metrics;
  grads: Record<string, tf.Tensor>;
  next: Record<string, tf.Tensor>;
}

function imagesTensor(images: Float32Array, B: number): tf.Tensor4D {
  return tf.tensor4d(images, [B, IMAGE_SIZE, IMAGE_SIZE, 3]);
}

function sliceBatch(batch: Batch, start: number, n: number) {
  const px = batch.images.length / batch.size;
  const L = batch.tokens.length / batch.size;
  return {
    images: batch.images.subarray(start * px, (start + n) * px),
    tokens: batch.tokens.subarray(start * L, (start + n) * L),
  };
}

/** tf.variableGrads keys gradients by TF.js variable name; re-key them by parameter name. */
function byParamName(model: Model, names: string[], g: tf.NamedTensorMap) {
  const out: Record<string, tf.Tensor> = {};
  for (const n of names) if (g[model.params[n].name]) out[n] = g[model.params[n].name];
  return out;
}

/**
 * Loss, metrics and the gradient of every parameter the loss reaches, on one
 * batch (phases 2–4; chunked when 0 < chunkSize < B).
 */
export function lossAndGrads(model: Model, batch: Batch, chunkSize = 0): LossAndGrads {
  if (chunkSize > 0 && chunkSize < batch.size) return chunkedLossAndGrads(model, batch, chunkSize);
  const names = Object.keys(model.params);
  let metrics: Metrics | undefined;
  let next: Record<string, tf.Tensor> = {};
  const { value, grads } = tf.variableGrads(
    () =>
      tf.tidy(() => {
        const B = batch.size;
        const info = { identity: batch.identity };
        const r = batchLoss(model, imagesTensor(batch.images, B), batch.tokens, B, info); // 2., 3.
        metrics = keepMetrics(r.metrics);
        next = keepNext(r.next);
        return r.loss;
      }),
    names.map((n) => model.params[n]),
  ); // 4.
  return { loss: value, metrics: metrics!, grads: byParamName(model, names, grads), next };
}

type OutputKey = keyof TowerOutputs;

function chunkedLossAndGrads(model: Model, batch: Batch, chunk: number): LossAndGrads {
  const objective = objectiveOfModel(model);
  const B = batch.size;
  const starts: number[] = [];
  for (let s = 0; s < B; s += chunk) starts.push(s);
  const chunkOutputs = (s: number) => {
    const n = Math.min(chunk, B - s);
    const part = sliceBatch(batch, s, n);
    return towerOutputs(model, imagesTensor(part.images, n), part.tokens, n);
  };
  // 2. forward without a tape: the tower outputs of the whole batch
  const parts = starts.map((s) => tf.tidy(() => chunkOutputs(s)));
  const keys = Object.keys(parts[0]) as OutputKey[];
  const whole = keys.map((k) => tf.concat(parts.map((p) => p[k] as tf.Tensor)));
  tf.dispose(parts);
  // 3. the objective and its gradient w.r.t. those outputs and its own parameters
  const own = model.objectiveParams;
  let metrics: Metrics | undefined;
  let next: Record<string, tf.Tensor> = {};
  const { value: loss, grads: g } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
    const out = Object.fromEntries(keys.map((k, i) => [k, xs[i]])) as TowerOutputs;
    const learned = Object.fromEntries(own.map((n, i) => [n, xs[keys.length + i]]));
    const p = { ...learned, ...model.state } as Params; // the state is read, never differentiated
    const r = objective.loss(out, p, model.objective, { identity: batch.identity });
    metrics = keepMetrics(r.metrics);
    next = keepNext(r.next);
    return r.loss;
  })([...whole, ...own.map((n) => model.params[n])]);
  const grads: Record<string, tf.Tensor> = {};
  own.forEach((n, i) => {
    grads[n] = g[keys.length + i];
  });
  // 4. back-propagate the output gradients through the towers, chunk by chunk
  const towerNames = Object.keys(model.params).filter((n) => !own.includes(n));
  for (const s of starts) {
    const n = Math.min(chunk, B - s);
    const { grads: gv, value } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const out = chunkOutputs(s);
          const dots = keys.map((k, i) => {
            const gi = g[i];
            const begin = gi.shape.map((_, d) => (d === 0 ? s : 0));
            const size = gi.shape.map((_, d) => (d === 0 ? n : -1));
            return tf.sum(tf.mul(out[k] as tf.Tensor, tf.slice(gi, begin, size)));
          });
          return tf.addN(dots) as tf.Scalar;
        }),
      towerNames.map((name) => model.params[name]),
    );
    value.dispose();
    const part = byParamName(model, towerNames, gv);
    for (const [name, x] of Object.entries(part)) {
      const prev = grads[name];
      grads[name] = prev ? tf.add(prev, x) : x;
      if (prev) tf.dispose([prev, x]);
    }
  }
  tf.dispose([...whole, ...g.slice(0, keys.length)]);
  return { loss, metrics: metrics!, grads, next };
}

/** True when every entry is finite: x − x is 0 for finite x, NaN for ±Inf/NaN. */
export function allFinite(xs: ArrayLike<number>): boolean {
  for (let i = 0; i < xs.length; i++) if (xs[i] - xs[i] !== 0) return false;
  return true;
}

/**
 * Throws naming the first non-finite tensor (the loss, then the gradients in
 * parameter order). Reads each tensor back and scans it in JS: no kernel calls,
 * where a per-tensor sum(x·0) on the backend cost two kernel calls per gradient.
 */
function checkFinite(
  step: number,
  loss: tf.Scalar,
  grads: Record<string, tf.Tensor>,
  others: tf.Tensor[], // freed with the rest when it throws
): void {
  const names = Object.keys(grads);
  const bad = [loss, ...names.map((n) => grads[n])].findIndex((x) => !allFinite(x.dataSync()));
  if (bad < 0) return;
  const value = bad === 0 ? ` = ${loss.dataSync()[0]}` : ' has NaN/Inf entries';
  tf.dispose([loss, ...others, ...Object.values(grads)]);
  throw new DivergenceError(
    step,
    bad === 0 ? 'loss' : `gradient of '${names[bad - 1]}'`,
    value.trim(),
  );
}
