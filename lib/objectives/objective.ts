/**
 * What an objective is (big_vision's "model by name", open_clip's loss dict): a
 * plain value that declares its config schema and defaults, the tower outputs
 * it reads, the learnable scalars and weights it owns, its loss with metrics to
 * log, and how evaluation scores images against texts. The training step and
 * evaluation call these and never name an objective.
 */
import * as tf from '@tensorflow/tfjs';
import type * as v from 'valibot';
import type { ModelConfig, TowerNeeds, TowerOutputs } from '../model/index';
import { l2normalize } from '../model/ops';
import type { ParamSpecs, Params } from '../model/params';

/** The scalar to minimise and named scalars to log every step (human units, diagnostics). */
export interface ObjectiveLoss {
  loss: tf.Scalar;
  metrics: Record<string, tf.Scalar>;
  /** the next values of the objective's state tensors (`state`), set after the update */
  next?: Record<string, tf.Tensor>;
}

/** What a batch says besides its images and captions: for diagnostics only, never for the loss. */
export interface BatchInfo {
  identity?: Int32Array; // [B] object identity of each image (data/types.ts)
}

/** The model sizes an objective may check itself against. */
export type ModelSizes = Pick<ModelConfig, 'embedDim'> & { imageWidth: number };

export interface Objective<C extends { name: string }> {
  name: C['name'];
  /** one line for listings */
  summary: string;
  /** strict schema of this objective's config section (its `name` a literal) */
  schema: v.GenericSchema<unknown, C>;
  /** the section a run gets when it names this objective and nothing else */
  defaults: C;
  /** the tower outputs `loss`, `imageVectors` and `similarity` read (a function when the config decides) */
  needs: TowerNeeds | ((cfg: C) => TowerNeeds);
  /** learned tokens the image tower must carry for it (Llip's K; 0 otherwise) */
  mixtureTokens: (cfg: C) => number;
  /** its learnable scalars and weights, initial values from the config */
  params: (cfg: C, model: ModelConfig) => ParamSpecs;
  /**
   * Tensors it carries from step to step without learning them (LIxP's stale
   * memory): the loss reads them beside its parameters and returns their next
   * values in `next`; checkpoints keep them, so a resumed run continues exactly.
   */
  state?: (cfg: C, model: ModelConfig) => ParamSpecs;
  /**
   * Training loss on a batch's tower outputs. It reads only `out`, its own
   * parameters (those of `params`) and its state: the chunked backward pass relies on it.
   */
  loss: (out: TowerOutputs, p: Params, cfg: C, info?: BatchInfo) => ObjectiveLoss;
  /** unit image vectors [N, E] for prototypes and neighbours */
  imageVectors: (img: TowerOutputs, p: Params, cfg: C) => tf.Tensor2D;
  /** scores [N, M] of N images against M texts (zero-shot classes, retrieval) */
  similarity: (img: TowerOutputs, txt: TowerOutputs, p: Params, cfg: C) => tf.Tensor2D;
  /**
   * One text side per class from its C·T prompt embeddings (template ensembling);
   * default: the normalised mean of the normalised prompt embeddings (CLIP's).
   */
  classTexts?: (
    prompts: TowerOutputs,
    classes: number,
    templates: number,
    p: Params,
    cfg: C,
  ) => TowerOutputs;
  /** cross-field rules: [field inside the section, problem] or null */
  check?: (cfg: C, sizes: ModelSizes) => [string, string] | null;
}

/** Objectives that embed an image as one pooled vector (SigLIP, CLIP, LIxP). */
export const POOLED: Pick<Objective<{ name: string }>, 'needs' | 'mixtureTokens'> & {
  imageVectors: (img: TowerOutputs) => tf.Tensor2D;
  similarity: (img: TowerOutputs, txt: TowerOutputs) => tf.Tensor2D;
} = {
  needs: { image: true, mixtureTokens: false, textFeature: false },
  mixtureTokens: () => 0,
  imageVectors: (img) => l2normalize(img.image!),
  similarity: (img, txt) => tf.matMul(l2normalize(img.image!), l2normalize(txt.text!), false, true),
};

/** The tower outputs an objective reads under a config. */
export function needsOf<C extends { name: string }>(o: Objective<C>, cfg: C): TowerNeeds {
  return typeof o.needs === 'function' ? o.needs(cfg) : o.needs;
}

/** A learnable scalar's spec: stored as given (a log for a scale), never weight-decayed. */
export function scalarSpec(value: number): ParamSpecs[string] {
  return { shape: [], init: 'const', value, decay: false };
}

/** CLIP's prompt ensembling: text [C·T, E] → the normalised mean of its unit rows per class [C, E]. */
export function unitMeanPerClass(prompts: TowerOutputs, C: number, T: number): TowerOutputs {
  const z = l2normalize(prompts.text!); // [C·T, E]
  const E = z.shape[1];
  return { text: l2normalize(tf.mean(tf.reshape(z, [C, T, E]), 1) as tf.Tensor2D) };
}
