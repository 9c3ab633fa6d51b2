/**
 * The few-shot suite on a finished run: its config, its newest checkpoint, its
 * world, and a task suite with support pools large enough for every k. What
 * `npm run fewshot -- <run dir>` and the closing numbers of the few-shot issue use.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DeepPartial, type ExperimentConfig, makeConfig } from '../config/presets';
import {
  type EpisodeRow,
  type FewShotRow,
  fewShotSettings,
  fewShotSuite,
  suiteAverage,
  summariseFewShot,
} from '../eval/fewshot-suite';
import { disposeModel, type Model } from '../objectives/model';
import { labPath, writeAtomic } from '../paths';
import { createAdamState, disposeAdamState } from '../train/optim';
import { loadLatestCheckpoint, restoreCheckpoint } from './checkpoint';
import { type LabData, labData, modelFor, runEffectiveRank } from './experiment';

export interface LoadedRun {
  config: ExperimentConfig;
  model: Model;
  data: LabData;
  step: number;
}

/** A run's model at its newest good checkpoint; `evalOverrides` resize the task suite. */
export function loadRun(dir: string, evalOverrides: DeepPartial<ExperimentConfig> = {}): LoadedRun {
  const root = labPath(dir);
  const saved = JSON.parse(fs.readFileSync(path.join(root, 'config.json'), 'utf8'));
  const ck = loadLatestCheckpoint(path.join(root, 'checkpoints'), saved);
  if (!ck) throw new Error(`${root}: no usable checkpoint`);
  const config = makeConfig(saved, evalOverrides);
  const data = labData(config);
  const model = modelFor(config, data.world);
  const adam = createAdamState(model.params);
  restoreCheckpoint(ck, model.params, adam, model.state);
  disposeAdamState(adam);
  return { config, model, data, step: ck.step };
}

export interface FewShotReport {
  run: string;
  /** support images per class in each task's pool */
  support: number;
  /** the run's objective (its colour key in figures) */
  objective: string;
  step: number;
  seconds: number;
  settings: ReturnType<typeof fewShotSettings>;
  episodes: EpisodeRow[];
  perTask: FewShotRow[];
  suite: FewShotRow[];
}

/**
 * Loads a run, runs the whole few-shot suite on its tasks (support pools of
 * max(shots) per class) and writes `<dir>/fewshot.json`.
 */
export function fewShotRun(
  dir: string,
  evalOverrides: DeepPartial<ExperimentConfig> = {},
): FewShotReport {
  const run = loadRun(dir, evalOverrides);
  try {
    const o = fewShotSettings(run.config.eval, run.config.seed);
    const t0 = performance.now();
    const episodes = fewShotSuite(run.model, run.data.world.tokenizer, run.data.tasks, o);
    const seconds = (performance.now() - t0) / 1000;
    const report = {
      run: dir,
      support: run.config.eval.supportPerClass,
      objective: run.config.objective.name,
      step: run.step,
      seconds,
      settings: o,
      episodes,
      perTask: summariseFewShot(episodes),
      suite: suiteAverage(episodes),
    };
    writeAtomic(path.join(labPath(dir), 'fewshot.json'), `${JSON.stringify(report)}\n`);
    return report;
  } finally {
    disposeModel(run.model);
  }
}

/** A run's fewshot.json, or null when it has none. */
export function readFewShotReport(dir: string): FewShotReport | null {
  const file = path.join(labPath(dir), 'fewshot.json');
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null;
}

/**
 * Adds to a finished run's results.json what runs file today and it lacks (the
 * effective rank, from its newest checkpoint), so an older run can be filed again
 * (`npm run sweep -- <grid> --refile`). Returns whether it wrote anything.
 */
export function backfillResults(dir: string): boolean {
  const file = path.join(labPath(dir), 'results.json');
  const res = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (typeof res.effectiveRank === 'number') return false;
  const run = loadRun(dir);
  try {
    res.effectiveRank = runEffectiveRank(run.model, run.data.world, run.config.seed);
  } finally {
    disposeModel(run.model);
  }
  writeAtomic(file, `${JSON.stringify(res)}\n`);
  return true;
}
