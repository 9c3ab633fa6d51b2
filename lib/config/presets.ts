/**
 * Experiment configs as plain data. A preset lists everything a run needs; a
 * variant is `makeConfig('lab', { loss: 'clip', steps: 200 })` — a deep merge, so
 * an override names only what it changes. Every run logs its merged config.
 */
import type { WorldConfig } from '../data/world';
import type { ImageTowerConfig, TextTowerConfig } from '../model/config';
import type { LossName } from '../objectives/siglip';
import { defaultOptim, type OptimConfig } from '../train/optim';

export interface EvalConfig {
  every: number; // evaluate every N steps during training (0: only at the end)
  queryPerClass: number; // query images per class in each task
  supportPerClass: number; // support pool per class for k-shot draws (>= 16)
  shots: number[]; // k of the k-shot prototype evaluation
  episodes: number; // random support draws averaged per k
}

export interface ExperimentConfig {
  name: string;
  seed: number; // seeds model init, batch order and few-shot draws
  loss: LossName;
  steps: number;
  batchSize: number;
  chunkSize: number; // backprop chunk (0: whole batch); bounds memory for large batches
  model: {
    image: ImageTowerConfig;
    text: Omit<TextTowerConfig, 'vocabSize' | 'contextLength'>; // those come from the tokenizer
    embedDim: number;
  };
  optim: OptimConfig;
  world: Partial<WorldConfig>;
  eval: EvalConfig;
}

/** Seconds-scale: unit tests and CI smoke runs. */
const tiny: ExperimentConfig = {
  name: 'tiny',
  seed: 0,
  loss: 'siglip',
  steps: 20,
  batchSize: 32,
  chunkSize: 0,
  model: {
    image: {
      imageSize: 32,
      patch: 8,
      width: 32,
      depth: 1,
      heads: 2,
      mlpRatio: 2,
      pool: 'map',
      registers: 0,
    },
    text: { width: 32, depth: 1, heads: 2, mlpRatio: 2 },
    embedDim: 32,
  },
  optim: { ...defaultOptim, lr: 2e-3, warmupSteps: 5 },
  world: { trainScenes: 2000, valScenes: 256, testScenes: 256 },
  eval: { every: 0, queryPerClass: 10, supportPerClass: 16, shots: [1, 4, 16], episodes: 2 },
};

/**
 * Minutes-scale: what the notebooks train. Sized by measurement on the 2-core
 * machine (environment.md): patch 8 keeps 16 image tokens, which makes a step
 * about 3x cheaper than patch 4 at the same width.
 */
const lab: ExperimentConfig = {
  name: 'lab',
  seed: 0,
  loss: 'siglip',
  steps: 1500,
  batchSize: 256,
  chunkSize: 0,
  model: {
    image: {
      imageSize: 32,
      patch: 8,
      width: 64,
      depth: 2,
      heads: 4,
      mlpRatio: 4,
      pool: 'map',
      registers: 0,
    },
    text: { width: 64, depth: 2, heads: 4, mlpRatio: 4 },
    embedDim: 64,
  },
  optim: { ...defaultOptim, lr: 2e-3, warmupSteps: 60, weightDecay: 1e-4 },
  world: {},
  eval: {
    every: 100,
    queryPerClass: 40,
    supportPerClass: 20,
    shots: [1, 2, 4, 8, 16],
    episodes: 5,
  },
};

export const PRESETS: Record<string, ExperimentConfig> = { tiny, lab };

export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function merge<T>(base: T, over: unknown, path: string): T {
  if (!isPlainObject(over)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) {
    if (!(k in out) && path !== 'world') {
      const keys = Object.keys(out).join(', ');
      throw new Error(`unknown config key '${path ? `${path}.` : ''}${k}' (valid: ${keys})`);
    }
    out[k] =
      isPlainObject(v) && isPlainObject(out[k]) ? merge(out[k], v, path ? `${path}.${k}` : k) : v;
  }
  return out as T;
}

/** A preset (by name or value) with overrides deep-merged in; unknown keys are errors. */
export function makeConfig(
  preset: string | ExperimentConfig,
  overrides: DeepPartial<ExperimentConfig> = {},
): ExperimentConfig {
  const base = typeof preset === 'string' ? PRESETS[preset] : preset;
  if (!base)
    throw new Error(`unknown preset '${preset}' (valid: ${Object.keys(PRESETS).join(', ')})`);
  return merge(structuredClone(base), overrides, '');
}

/** LAB_QUICK=1 (CI) shrinks step counts and eval sizes so the notebooks run in seconds. */
export function quickMode(): boolean {
  return process.env.LAB_QUICK === '1';
}

/** What quick mode changes: enough steps to exercise every code path, no more. */
const QUICK: DeepPartial<ExperimentConfig> = {
  steps: 16,
  batchSize: 64,
  world: { trainScenes: 2000, valScenes: 600, testScenes: 256 },
  eval: { every: 8, queryPerClass: 8, supportPerClass: 16, shots: [1, 4, 16], episodes: 2 },
};

/**
 * The config a notebook trains: the preset with the notebook's overrides, shrunk
 * by quick mode when LAB_QUICK=1 (the notebook's own overrides still apply on top).
 */
export function notebookConfig(
  preset: string,
  overrides: DeepPartial<ExperimentConfig> = {},
): ExperimentConfig {
  const base = makeConfig(preset);
  return makeConfig(quickMode() ? makeConfig(base, QUICK) : base, overrides);
}
