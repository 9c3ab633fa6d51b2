/**
 * One experiment end to end: world + task suite → model → training loop with
 * periodic zero-shot evaluation → final zero-shot / k-shot / retrieval results.
 * Notebooks and the `npm run train` CLI both call `runExperiment`, so a figure in
 * a notebook and a line in a results table come from the same code path.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildTaskSuite } from './data/tasks';
import type { Task } from './data/types';
import { createWorld, type World } from './data/world';
import {
  embedImages,
  evaluateSuite,
  type Retrieval,
  retrieval,
  type TaskResult,
  zeroShotAccuracy,
} from './eval';
import { createModel, type Model, type ModelConfig } from './model/index';
import { labPath, writeAtomic } from './paths';
import type { ExperimentConfig } from './presets';
import { Rng } from './rng';
import { type StepRecord, trainLoop } from './train';

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

/** Mean zero-shot accuracy over the suite, plus one `zs:<task>` entry per task. */
export function zeroShotSummary(model: Model, data: LabData): Record<string, number> {
  const out: Record<string, number> = {};
  let sum = 0;
  for (const task of data.tasks) {
    const q = embedImages(model, task.query.images);
    out[`zs:${task.name}`] = zeroShotAccuracy(model, data.world.tokenizer, task, q);
    sum += out[`zs:${task.name}`];
    q.dispose();
  }
  out.zeroShotMean = sum / data.tasks.length;
  return out;
}

export interface ExperimentRun {
  config: ExperimentConfig;
  model: Model;
  history: StepRecord[];
  results: TaskResult[];
  retrieval: Retrieval;
  trainSeconds: number;
}

export interface RunOptions {
  outDir?: string; // writes config.json, history.jsonl, results.json
  data?: LabData;
  quiet?: boolean;
}

function writeJsonAtomic(file: string, value: unknown): void {
  writeAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Train one config and evaluate it on the whole suite. */
export function runExperiment(cfg: ExperimentConfig, o: RunOptions = {}): ExperimentRun {
  const data = o.data ?? labData(cfg);
  const outDir = o.outDir ? labPath(o.outDir) : undefined; // relative to the repo root
  const { world } = data;
  const model = createModel(
    resolveModelConfig(cfg, world),
    cfg.loss,
    world.tokenizer.END,
    cfg.seed,
  );
  if (outDir) writeJsonAtomic(path.join(outDir, 'config.json'), cfg);
  const dataRng = new Rng(cfg.seed).fork(1);
  const t0 = performance.now();
  const { history, adam } = trainLoop(model, {
    steps: cfg.steps,
    batchSize: cfg.batchSize,
    chunkSize: cfg.chunkSize,
    optim: cfg.optim,
    nextBatch: () => world.sampleBatch(dataRng, cfg.batchSize, 'train'),
    evaluate: (m) => zeroShotSummary(m, data),
    evalEvery: cfg.eval.every,
    historyPath: outDir ? path.join(outDir, 'history.jsonl') : undefined,
    label: `${cfg.name}/${cfg.loss}`,
    quiet: o.quiet,
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  tf.dispose([...Object.values(adam.m), ...Object.values(adam.v)]);
  const results = evaluateSuite(model, world.tokenizer, data.tasks, {
    shots: cfg.eval.shots,
    episodes: cfg.eval.episodes,
    seed: cfg.seed,
  });
  const ret = retrieval(model, world.sampleBatch(new Rng(cfg.seed + 7), 512, 'val'));
  if (outDir)
    writeJsonAtomic(path.join(outDir, 'results.json'), { results, retrieval: ret, trainSeconds });
  return { config: cfg, model, history, results, retrieval: ret, trainSeconds };
}
