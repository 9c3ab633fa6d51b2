/**
 * Experiment configs as plain data: one base config, and presets that are
 * overrides of it (nanoGPT's config files, big_vision's get_config). A variant is
 * `makeConfig('lab', { objective: { name: 'lixp', alpha: 0.8 }, steps: 200 })`:
 * a deep merge, so an override names only what it changes, then the one
 * validation gate (schema.ts). Naming another objective starts that section from
 * the objective's own defaults. Every run logs its merged config.
 */

import { OBJECTIVES, objectiveDefaults } from '../objectives/index';
import { defaultOptim } from '../train/optim';
import { ConfigError, type ExperimentConfig, nearestKey, validateConfig } from './schema';

export type { ExperimentConfig } from './schema';

/**
 * The base: what the notebooks train (the `lab` preset). Sized by measurement on
 * the 2-core machine (environment.md): patch 8 keeps 16 image tokens, which
 * makes a step about 3x cheaper than patch 4 at the same width.
 */
const BASE: ExperimentConfig = {
  name: 'lab',
  seed: 0,
  objective: OBJECTIVES.siglip.defaults,
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

export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};

/** Presets as overrides of BASE. */
export const PRESETS: Record<string, DeepPartial<ExperimentConfig>> = {
  /** minutes: the notebooks */
  lab: {},
  /** seconds: unit tests and CI smoke runs */
  tiny: {
    name: 'tiny',
    steps: 20,
    batchSize: 32,
    model: {
      image: { width: 32, depth: 1, heads: 2, mlpRatio: 2 },
      text: { width: 32, depth: 1, heads: 2, mlpRatio: 2 },
      embedDim: 32,
    },
    optim: { warmupSteps: 5 },
    world: { trainScenes: 2000, valScenes: 256, testScenes: 256 },
    eval: { every: 0, queryPerClass: 10, supportPerClass: 16, shots: [1, 4, 16], episodes: 2 },
  },
};

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Deep merge of `over` into `base` (arrays and scalars replace). Unknown keys are
 * merged in as they are, for the validation to name them; an `objective` whose
 * name changes starts from that objective's defaults.
 */
function merge(base: unknown, over: unknown, path: string): unknown {
  if (!isPlainObject(over) || !isPlainObject(base)) return structuredClone(over); // never shared
  let start = base;
  const name = over.name;
  if (path === 'objective' && typeof name === 'string' && name !== base.name && name in OBJECTIVES)
    start = objectiveDefaults(name);
  const out: Record<string, unknown> = { ...start };
  for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v, path ? `${path}.${k}` : k);
  return out;
}

/** A preset's full config by name (not yet validated). */
function presetConfig(name: string): ExperimentConfig {
  const over = PRESETS[name];
  if (!over) {
    const near = nearestKey(name, Object.keys(PRESETS));
    throw new ConfigError('preset', `unknown preset '${name}' (did you mean '${near}'?)`);
  }
  return merge(structuredClone(BASE), over, '') as ExperimentConfig;
}

/**
 * A preset (by name or value) with overrides deep-merged in, validated: the one
 * gate every config passes. Throws a ConfigError naming the field.
 */
export function makeConfig(
  preset: string | ExperimentConfig,
  overrides: DeepPartial<ExperimentConfig> = {},
): ExperimentConfig {
  const base = typeof preset === 'string' ? presetConfig(preset) : structuredClone(preset);
  return validateConfig(merge(base, overrides, ''));
}

/** `('a.b', 1)` → `{ a: { b: 1 } }`, the shape makeConfig merges. */
export function nest(key: string, value: unknown): DeepPartial<ExperimentConfig> {
  return key
    .split('.')
    .reduceRight<unknown>((acc, p) => ({ [p]: acc }), value) as DeepPartial<ExperimentConfig>;
}

/** Dotted overrides (`{ 'objective.alpha': 0.8 }`, the CLI's --set, a sweep's axes) as one override. */
export function fromDotted(sets: Record<string, unknown>): DeepPartial<ExperimentConfig> {
  return Object.entries(sets).reduce<DeepPartial<ExperimentConfig>>(
    (acc, [k, v]) => merge(acc, nest(k, v), '') as DeepPartial<ExperimentConfig>,
    {},
  );
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

/**
 * The settings of a notebook's few-shot section (eval/fewshot-suite.ts): the
 * LIxP paper's k = 1 … 64, 5 episodes, drawn from 128 support images per class
 * (a pool of exactly 64 would make every 64-shot episode the same set). Quick
 * mode keeps its small eval section and cuts the probe to 50 steps. Only the
 * task suite and the suite's options read it (runExperiment is not given it).
 */
export function fewShotConfig(cfg: ExperimentConfig): ExperimentConfig {
  const shots = [1, 2, 4, 8, 16, 32, 64];
  return makeConfig(
    cfg,
    quickMode()
      ? { eval: { fewShot: { probe: { steps: 50 } } } }
      : { eval: { supportPerClass: 128, shots, episodes: 5, fewShot: {} } },
  );
}
