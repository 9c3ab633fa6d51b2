/**
 * A trainable model: the towers (model/) plus what its objective adds — the
 * learnable scalars and weights the objective owns, and the mixture tokens it
 * asks the image tower to carry. One flat parameter map holds both, so
 * AdamW, checkpoints and weight export see a single state dict.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  imageOutputs,
  type ModelConfig,
  type TowerOutputs,
  type Towers,
  textOutputs,
  validateModelConfig,
} from '../model/index';
import { disposeParams, initParams, type ParamSpecs, type Params } from '../model/params';
import { textTowerSpecs } from '../model/text';
import { imageTowerSpecs } from '../model/vit';
import { type Objective, type ObjectiveConfig, objectiveDefaults, objectiveOf } from './index';
import { type BatchInfo, needsOf, type ObjectiveLoss } from './objective';

export interface Model extends Towers {
  objective: ObjectiveConfig;
  specs: ParamSpecs;
  /** names of the parameters the objective owns (the rest are the towers') */
  objectiveParams: string[];
  /** the objective's state: carried across steps, checkpointed, never learned (`Objective.state`) */
  state: Params;
}

/** The towers' config with the objective's mixture tokens filled in. */
export function towersFor(cfg: ModelConfig, objective: ObjectiveConfig): ModelConfig {
  const K = objectiveOf(objective).mixtureTokens(objective);
  return K > 0 ? { ...cfg, image: { ...cfg.image, mixtureTokens: K } } : cfg;
}

/**
 * Towers + objective with freshly initialised parameters (tower weights first,
 * then the objective's, drawn from one seeded stream). `objective` may be a
 * name, meaning its default section.
 */
export function createModel(
  cfg: ModelConfig,
  objective: ObjectiveConfig | string,
  endId: number,
  seed: number,
): Model {
  const ocfg = typeof objective === 'string' ? objectiveDefaults(objective) : objective;
  const config = towersFor(cfg, ocfg);
  validateModelConfig(config);
  const own = objectiveOf(ocfg).params(ocfg, config);
  const specs: ParamSpecs = {
    ...imageTowerSpecs(config.image, config.embedDim),
    ...textTowerSpecs(config.text, config.embedDim),
    ...own,
  };
  const params = initParams(specs, seed);
  const state = initParams(objectiveOf(ocfg).state?.(ocfg, config) ?? {}, seed, false);
  return {
    config,
    objective: ocfg,
    specs,
    params,
    endId,
    objectiveParams: Object.keys(own),
    state,
  };
}

/** Free a model's variables: parameters and state. */
export function disposeModel(m: Model): void {
  disposeParams(m.params);
  disposeParams(m.state);
}

/** The model's objective. */
export const objectiveOfModel = (m: Model): Objective<ObjectiveConfig> => objectiveOf(m.objective);

/** The tower outputs the model's objective reads, for B images [B, 32, 32, 3] and B captions. */
export function towerOutputs(
  m: Model,
  images: tf.Tensor4D | null,
  tokens: Int32Array | null,
  B: number,
): TowerOutputs {
  const needs = needsOf(objectiveOfModel(m), m.objective);
  return {
    ...(images ? imageOutputs(m, images, needs) : {}),
    ...(tokens ? textOutputs(m, tokens, B, needs) : {}),
  };
}

/** The objective's own parameters and its state: all its loss may read besides the tower outputs. */
export function ownParams(m: Model): Params {
  return { ...Object.fromEntries(m.objectiveParams.map((n) => [n, m.params[n]])), ...m.state };
}

/** The objective's loss and metrics on B images [B, 32, 32, 3] and their B captions. */
export function batchLoss(
  m: Model,
  images: tf.Tensor4D,
  tokens: Int32Array,
  B: number,
  info: BatchInfo = {},
): ObjectiveLoss {
  const out = towerOutputs(m, images, tokens, B);
  return objectiveOfModel(m).loss(out, ownParams(m), m.objective, info);
}
