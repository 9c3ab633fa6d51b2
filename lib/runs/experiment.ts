/**
 * One experiment end to end: world + task suite → model → training loop with
 * periodic zero-shot evaluation → final zero-shot / k-shot / retrieval results.
 * Notebooks and the `npm run train` CLI both call `runExperiment`, so a figure in
 * a notebook and a line in a results table come from the same code path.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ExperimentConfig } from '../config/presets';
import { buildTaskSuite } from '../data/tasks';
import type { Task } from '../data/types';
import { createWorld, type World } from '../data/world';
import {
  evaluateSuite,
  imageSide,
  type Retrieval,
  retrieval,
  type TaskResult,
  zeroShotAccuracy,
} from '../eval/evaluate';
import {
  type FewShotRow,
  fewShotSettings,
  fewShotSuite,
  suiteAverage,
} from '../eval/fewshot-suite';
import { covarianceSpectrum, effectiveRank, spectrumFeatures } from '../eval/spectrum';
import type { ModelConfig } from '../model/index';
import { loadParams } from '../model/params';
import { loadWeights, readWeights, weightsBytes } from '../model/safetensors';
import { createModel, disposeModel, type Model } from '../objectives/model';
import { labPath, readJsonl, writeAtomic } from '../paths';
import { Rng } from '../rng';
import { type StepRecord, trainLoop } from '../train/loop';
import { createAdamState, disposeAdamState } from '../train/optim';
import {
  type Checkpoint,
  CheckpointWriter,
  loadLatestCheckpoint,
  restoreCheckpoint,
  weightsSha256,
} from './checkpoint';
import { copyRun, findReusable, type ReuseEntry, type RunShape, recordReusable } from './reuse';

export interface LabData {
  world: World;
  tasks: Task[];
}

const dataCache = new Map<string, LabData>();

/** The world and task suite of a config, built once per process and shared by runs. */
export function labData(cfg: ExperimentConfig): LabData {
  const key = JSON.stringify([cfg.world, cfg.eval.queryPerClass, cfg.eval.supportPerClass]);
  let d = dataCache.get(key);
  if (!d) {
    const world = createWorld(cfg.world);
    const tasks = buildTaskSuite(world, {
      queryPerClass: cfg.eval.queryPerClass,
      supportPerClass: cfg.eval.supportPerClass,
    });
    d = { world, tasks };
    dataCache.set(key, d);
  }
  return d;
}

/** The model config of an experiment, with the text sizes taken from the tokenizer. */
export function resolveModelConfig(cfg: ExperimentConfig, world: World): ModelConfig {
  const tok = world.tokenizer;
  return {
    image: cfg.model.image,
    text: { ...cfg.model.text, vocabSize: tok.vocab.length, contextLength: tok.contextLength },
    embedDim: cfg.model.embedDim,
  };
}

/** A fresh model of a run's config in its world (init from the run's seed). */
export function modelFor(cfg: ExperimentConfig, world: World): Model {
  return createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, cfg.seed);
}

/** Mean zero-shot accuracy over the suite, plus one `zs:<task>` entry per task. */
export function zeroShotSummary(model: Model, data: LabData): Record<string, number> {
  return zeroShotRecord(
    data.tasks.map((task) => {
      const q = imageSide(model, task.query.images);
      const zeroShot = zeroShotAccuracy(model, data.world.tokenizer, task, q);
      tf.dispose(Object.values(q));
      return { task: task.name, zeroShot };
    }),
  );
}

/** `zs:<task>` per task and their mean, `zeroShotMean`: the record zeroShotSummary returns. */
export function zeroShotRecord(
  results: { task: string; zeroShot: number }[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) out[`zs:${r.task}`] = r.zeroShot;
  out.zeroShotMean = results.reduce((a, r) => a + r.zeroShot, 0) / results.length;
  return out;
}

export interface ExperimentRun {
  config: ExperimentConfig;
  model: Model;
  history: StepRecord[];
  results: TaskResult[];
  retrieval: Retrieval;
  trainSeconds: number;
  final: FinalSummary;
  /** the few-shot suite averaged over the tasks, when the config has `eval.fewShot` */
  fewShot?: FewShotRow[];
  /** the run folder whose finished run was loaded instead of training (`reuse`) */
  reusedFrom?: string;
  /** effective rank of the visual features' covariance spectrum (`runEffectiveRank`) */
  effectiveRank: number;
}

/**
 * The effective rank (eval/spectrum.ts) of `model`'s visual features on 1024
 * validation images drawn from the run's seed: the one-number summary of its
 * covariance spectrum that every run files (Llip: the K tokens of each image).
 */
export function runEffectiveRank(model: Model, world: World, seed: number): number {
  const images = world.sampleBatch(new Rng(seed + 11), 1024, 'val').images;
  const x = spectrumFeatures(model, images);
  const rank = effectiveRank(covarianceSpectrum(x));
  x.dispose();
  return rank;
}

export interface RunOptions {
  outDir?: string; // writes config.json, history.jsonl, final.json, results.json
  data?: LabData;
  quiet?: boolean;
  /** write <outDir>/checkpoints/ckpt-<step>.bin every k steps and at the end (0: never) */
  checkpointEvery?: number;
  keepLast?: number; // numbered checkpoints kept (plus best.bin); default 3
  /** continue from the newest good checkpoint in <outDir>/checkpoints (fresh start if none) */
  resume?: boolean;
  /** zero-shot evaluation during training (default true); off keeps CLI smoke runs fast */
  evalDuringTraining?: boolean;
  warn?: (msg: string) => void; // where "skipping a bad checkpoint" goes; console.warn
  /**
   * a run folder (its weights.safetensors) or a .safetensors file whose tower weights
   * start this run (post-training: LIxP from a trained SigLIP); the objective's own
   * parameters start from the config. Ignored when resuming from a checkpoint.
   */
  initFrom?: string;
  /**
   * load a finished run of the same config, code and backend instead of training
   * (lib/runs/reuse.ts; its files are copied into outDir), and record this one for
   * later reuse once it finishes. Needs outDir; ignored when resuming or initFrom.
   */
  reuse?: boolean;
}

/**
 * Load the tower weights of `source` (a run folder or a .safetensors file) into the
 * model; the objective's parameters keep their config init. Every tower parameter
 * must be there with its shape (same towers), or nothing is loaded. Returns the file.
 */
export function initFromWeights(model: Model, source: string): string {
  const file = source.endsWith('.safetensors') ? source : path.join(source, 'weights.safetensors');
  if (!fs.existsSync(file)) throw new Error(`--init-from: ${file} not found`);
  const { tensors } = readWeights(file);
  const towers = Object.keys(model.params).filter((n) => !model.objectiveParams.includes(n));
  const bad = towers.filter((n) => tensors[n]?.shape.join() !== model.params[n].shape.join());
  if (bad.length)
    throw new Error(
      `--init-from ${file}: other towers (missing or mis-shaped: ${bad.slice(0, 5).join(', ')})`,
    );
  loadParams(Object.fromEntries(towers.map((n) => [n, model.params[n]])), tensors);
  return file;
}

/** What `final.json` holds: equal for a resumed run and an uninterrupted one. */
export interface FinalSummary {
  step: number;
  loss: number;
  weightsSha256: string; // float32 LE bytes of every parameter, in name order
  lossCurveSha256: string; // JSON of the per-step losses: the whole curve, not only its end
}

export interface TrainedRun {
  config: ExperimentConfig;
  model: Model;
  history: StepRecord[];
  data: LabData;
  trainSeconds: number;
  final: FinalSummary;
  /** the run folder whose finished run was loaded instead of training (`reuse`) */
  reusedFrom?: string;
}

function writeJsonAtomic(file: string, value: unknown): void {
  writeAtomic(file, `${JSON.stringify(value, null, 2)}\n`, { fsync: true });
}

/** The checkpoint to resume from, loaded before any data is built so a bad one fails fast. */
function resumePoint(cfg: ExperimentConfig, o: RunOptions, ckDir?: string): Checkpoint | null {
  if (!o.resume) return null;
  if (!ckDir) throw new Error('resume needs an outDir');
  const ck = loadLatestCheckpoint(ckDir, cfg, o.warn);
  if (!ck) (o.warn ?? console.warn)(`no checkpoint in ${ckDir}: starting from step 0`);
  return ck;
}

function finalSummary(model: Model, history: StepRecord[]): FinalSummary {
  const losses = history.map((r) => r.loss);
  return {
    step: history.length ? history[history.length - 1].step : 0,
    loss: losses[losses.length - 1],
    weightsSha256: weightsSha256(model.params),
    lossCurveSha256: createHash('sha256').update(JSON.stringify(losses)).digest('hex'),
  };
}

/** Mean loss since the previous checkpoint: less noisy than one batch for picking best.bin. */
function recentLoss(history: StepRecord[], k: number): number {
  const xs = history.slice(-Math.max(1, k)).map((r) => r.loss);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * The finished run `hit` loaded into a new model, or null when it does not check
 * out (weights or loss curve other than its final.json says, objective state).
 */
function reuseRun(
  cfg: ExperimentConfig,
  o: RunOptions,
  hit: ReuseEntry,
  outDir: string,
): TrainedRun | null {
  const data = o.data ?? labData(cfg);
  const model = modelFor(cfg, data.world);
  try {
    // an objective's state (LIxP's memory) is not in the weights file: train instead
    if (Object.keys(model.state).length) throw new Error('objective state');
    loadWeights(path.join(hit.dir, 'weights.safetensors'), model.params);
    const history = readJsonl<StepRecord>(path.join(hit.dir, 'history.jsonl'));
    const final = finalSummary(model, history);
    if (final.weightsSha256 !== hit.weightsSha256 || final.lossCurveSha256 !== hit.lossCurveSha256)
      throw new Error('weights or loss curve changed');
    if (path.resolve(outDir) !== path.resolve(hit.dir)) copyRun(hit.dir, outDir);
    if (!o.quiet)
      console.log(
        `[lab] ${cfg.name}/${cfg.objective.name}: reusing the finished run in ${path.relative(labPath('.'), hit.dir)} (same config, code and backend; it trained in ${hit.trainSeconds.toFixed(0)} s)`,
      );
    return {
      config: cfg,
      model,
      history,
      data,
      trainSeconds: hit.trainSeconds,
      final,
      reusedFrom: hit.dir,
    };
  } catch {
    disposeModel(model);
    return null;
  }
}

/**
 * Train one config (resuming from a checkpoint when asked) and write its run
 * files. On failure (divergence included) the model and optimizer tensors are
 * freed and the checkpoints on disk are those of the last good steps.
 */
export function trainExperiment(cfg: ExperimentConfig, o: RunOptions = {}): TrainedRun {
  const outDir = o.outDir ? labPath(o.outDir) : undefined; // relative to the repo root
  const ckDir = outDir && path.join(outDir, 'checkpoints');
  const shape: RunShape = {
    checkpointEvery: o.checkpointEvery ?? 0,
    keepLast: o.keepLast ?? 3,
    evalDuringTraining: o.evalDuringTraining !== false,
  };
  // the folder a reusable run is loaded into and this one recorded from (none: no reuse)
  const reuseDir = o.reuse && !o.resume && !o.initFrom ? outDir : undefined;
  if (reuseDir)
    for (const hit of findReusable(cfg, shape)) {
      const reused = reuseRun(cfg, o, hit, reuseDir);
      if (reused) return reused;
    }
  const ck = resumePoint(cfg, o, ckDir);
  const data = o.data ?? labData(cfg);
  const { world } = data;
  const model = modelFor(cfg, world);
  const adam = createAdamState(model.params);
  const dataRng = new Rng(cfg.seed).fork(1);
  try {
    if (ck) {
      restoreCheckpoint(ck, model.params, adam, model.state);
      dataRng.setState(ck.rngs.data);
    } else if (o.initFrom) initFromWeights(model, labPath(o.initFrom));
    else if (cfg.initFrom)
      throw new Error(
        `config initFrom '${cfg.initFrom}' names a run to start from: give its folder (--init-from <dir>), or run it through the sweep that made it`,
      );
    if (outDir) {
      writeJsonAtomic(path.join(outDir, 'config.json'), cfg);
      // lines written after the checkpoint by the killed process are dropped
      if (ck)
        writeAtomic(
          path.join(outDir, 'history.jsonl'),
          ck.history.map((r: StepRecord) => `${JSON.stringify(r)}\n`).join(''),
        );
    }
    const every = ckDir ? (o.checkpointEvery ?? 0) : 0;
    const writer = every > 0 && ckDir ? new CheckpointWriter(ckDir, o.keepLast ?? 3) : null;
    const t0 = performance.now();
    const { history } = trainLoop(model, {
      steps: cfg.steps,
      chunkSize: cfg.chunkSize,
      optim: cfg.optim,
      nextBatch: () => world.sampleBatch(dataRng, cfg.batchSize, 'train'),
      evaluate: o.evalDuringTraining === false ? undefined : (m) => zeroShotSummary(m, data),
      evalEvery: cfg.eval.every,
      historyPath: outDir ? path.join(outDir, 'history.jsonl') : undefined,
      label: `${cfg.name}/${cfg.objective.name}`,
      quiet: o.quiet,
      adam,
      startStep: ck?.step ?? 0,
      history: ck?.history,
      afterStep: (rec, st, hist) => {
        if (!writer || (rec.step % every !== 0 && rec.step !== cfg.steps)) return;
        const rngs = { data: dataRng.state() };
        const score = recentLoss(hist, every);
        writer.save({
          step: rec.step,
          params: model.params,
          adam: st,
          state: model.state,
          rngs,
          config: cfg,
          history: hist,
          score,
        });
      },
    });
    const trainSeconds = (performance.now() - t0) / 1000;
    const final = finalSummary(model, history);
    if (outDir) {
      const meta = { config: JSON.stringify(cfg), step: String(final.step) };
      writeAtomic(path.join(outDir, 'weights.safetensors'), weightsBytes(model.params, meta), {
        fsync: true,
      });
      writeJsonAtomic(path.join(outDir, 'final.json'), final);
      if (reuseDir)
        recordReusable(cfg, {
          ...shape,
          dir: reuseDir,
          trainSeconds,
          weightsSha256: final.weightsSha256,
          lossCurveSha256: final.lossCurveSha256,
        });
    }
    return { config: cfg, model, history, data, trainSeconds, final };
  } catch (e) {
    disposeModel(model);
    throw e;
  } finally {
    disposeAdamState(adam);
  }
}

/** Train one config and evaluate it on the whole suite. */
export function runExperiment(cfg: ExperimentConfig, o: RunOptions = {}): ExperimentRun {
  const { model, history, data, trainSeconds, final, reusedFrom } = trainExperiment(cfg, o);
  const outDir = o.outDir ? labPath(o.outDir) : undefined;
  const { world } = data;
  const results = evaluateSuite(model, world.tokenizer, data.tasks, {
    shots: cfg.eval.shots,
    episodes: cfg.eval.episodes,
    seed: cfg.seed,
  });
  const ret = retrieval(model, world.sampleBatch(new Rng(cfg.seed + 7), 512, 'val'));
  const fewShot = cfg.eval.fewShot
    ? suiteAverage(
        fewShotSuite(model, world.tokenizer, data.tasks, fewShotSettings(cfg.eval, cfg.seed)),
      )
    : undefined;
  const rank = runEffectiveRank(model, world, cfg.seed);
  if (outDir)
    writeJsonAtomic(path.join(outDir, 'results.json'), {
      results,
      retrieval: ret,
      trainSeconds,
      effectiveRank: rank,
      ...(fewShot ? { fewShot } : {}),
    });
  return {
    config: cfg,
    model,
    history,
    results,
    retrieval: ret,
    trainSeconds,
    final,
    fewShot,
    effectiveRank: rank,
    ...(reusedFrom ? { reusedFrom } : {}),
  };
}
