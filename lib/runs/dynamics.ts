/**
 * Training dynamics (notebook 05): one run whose periodic evaluation records, beside
 * the step's own record (loss, every learnable scalar, gradient norms, LIxP's
 * attention statistics), the held-out loss on a fixed validation batch, zero-shot
 * and k-shot prototype accuracy over the task suite, and the effective rank of the
 * image features' covariance spectrum. A run that diverges returns the steps it
 * made and the DivergenceError, so a notebook can show the guard at work.
 */
import * as tf from '@tensorflow/tfjs';
import type { ExperimentConfig } from '../config/presets';
import type { Batch } from '../data/types';
import { IMAGE_SIZE } from '../data/types';
import { evaluateSuite } from '../eval/evaluate';
import { covarianceSpectrum, effectiveRank, spectrumFeatures } from '../eval/spectrum';
import { batchLoss, type Model } from '../objectives/model';
import { Rng } from '../rng';
import { DivergenceError, type StepRecord, trainLoop } from '../train/loop';
import { createAdamState, disposeAdamState } from '../train/optim';
import { type LabData, modelFor, zeroShotRecord } from './experiment';

export interface DynamicsOptions {
  data: LabData;
  /** evaluate every this many steps (and at the end) */
  every: number;
  /** size of the fixed held-out batch (validation split) */
  valBatch?: number;
  /** shots of the prototype accuracy recorded as `fewShot<k>` */
  shots?: number;
  /** images of the validation split whose features give the spectrum */
  spectrumImages?: number;
  quiet?: boolean;
}

export interface DynamicsRun {
  config: ExperimentConfig;
  model: Model;
  history: StepRecord[];
  /** set when the divergence guard stopped the run; `history` holds the good steps */
  diverged?: DivergenceError;
  seconds: number;
}

/** The objective's loss on a fixed batch, no gradient (LIxP's context is the batch itself). */
export function heldOutLoss(model: Model, batch: Batch): number {
  return tf.tidy(() => {
    const images = tf.tensor4d(batch.images, [batch.size, IMAGE_SIZE, IMAGE_SIZE, 3]);
    const r = batchLoss(model, images, batch.tokens, batch.size, { identity: batch.identity });
    return r.loss.dataSync()[0];
  });
}

/** Everything notebook 05 draws at an evaluation step. */
function evaluateDynamics(model: Model, o: DynamicsOptions, val: Batch, spectrum: Batch) {
  const k = o.shots ?? 4;
  const res = evaluateSuite(model, o.data.world.tokenizer, o.data.tasks, {
    shots: [k],
    episodes: 2,
    seed: 0,
  });
  const x = spectrumFeatures(model, spectrum.images);
  const s = covarianceSpectrum(x);
  x.dispose();
  return {
    ...zeroShotRecord(res), // zeroShotSummary's numbers, without embedding the queries again
    valLoss: heldOutLoss(model, val),
    [`fewShot${k}`]: res.reduce((a, r) => a + r.fewShot[k], 0) / res.length,
    effectiveRank: effectiveRank(s),
  };
}

/**
 * Trains `cfg` from scratch (no files written) with the evaluation above every
 * `o.every` steps. On divergence the model is freed and `diverged` says where.
 */
export function trainWithDynamics(cfg: ExperimentConfig, o: DynamicsOptions): DynamicsRun {
  const { world } = o.data;
  const model = modelFor(cfg, world);
  const adam = createAdamState(model.params);
  const dataRng = new Rng(cfg.seed).fork(1);
  const val = world.sampleBatch(new Rng(cfg.seed + 5), o.valBatch ?? cfg.batchSize, 'val');
  const spectrum = world.sampleBatch(new Rng(cfg.seed + 6), o.spectrumImages ?? 256, 'val');
  const history: StepRecord[] = [];
  const t0 = performance.now();
  try {
    trainLoop(model, {
      steps: cfg.steps,
      chunkSize: cfg.chunkSize,
      optim: cfg.optim,
      nextBatch: () => world.sampleBatch(dataRng, cfg.batchSize, 'train'),
      evaluate: (m) => evaluateDynamics(m, o, val, spectrum),
      evalEvery: o.every,
      label: `${cfg.name}/${cfg.objective.name}`,
      quiet: o.quiet,
      adam,
      afterStep: (rec) => {
        history.push(rec);
      },
    });
    return { config: cfg, model, history, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    if (!(e instanceof DivergenceError)) throw e;
    for (const v of Object.values(model.params)) v.dispose();
    return { config: cfg, model, history, diverged: e, seconds: (performance.now() - t0) / 1000 };
  } finally {
    disposeAdamState(adam);
  }
}

/** The bias that makes σ(b) the share of positive pairs in a batch of B: log(p / (1 − p)), p = 1/B. */
export const positiveLogOdds = (B: number) => Math.log(1 / B / (1 - 1 / B));
