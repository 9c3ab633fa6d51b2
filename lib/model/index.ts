/**
 * The two-tower model: a ViT image tower and a causal text transformer projected
 * into a shared E-dimensional space, plus the loss's learnable scalars.
 * Functions are pure over a `Params` map (big_vision style); `Model` just bundles
 * the config with its parameters.
 */
import * as tf from '@tensorflow/tfjs';
import { type LossName, lossParamSpecs } from '../objectives/siglip';
import { type ModelConfig, validateModelConfig } from './config';
import { l2normalize } from './ops';
import { initParams, type ParamSpecs, type Params } from './params';
import { encodeTextsRaw, endOfTextMask, textTowerSpecs } from './text';
import { encodeImagesRaw, imageTowerSpecs } from './vit';

export interface Model {
  config: ModelConfig;
  loss: LossName;
  specs: ParamSpecs;
  params: Params;
  /** token id of END, for end-of-text pooling */
  endId: number;
}

export function modelSpecs(cfg: ModelConfig, loss: LossName): ParamSpecs {
  return {
    ...imageTowerSpecs(cfg.image, cfg.embedDim),
    ...textTowerSpecs(cfg.text, cfg.embedDim),
    ...lossParamSpecs(loss),
  };
}

export function createModel(cfg: ModelConfig, loss: LossName, endId: number, seed: number): Model {
  validateModelConfig(cfg);
  const specs = modelSpecs(cfg, loss);
  return { config: cfg, loss, specs, params: initParams(specs, seed), endId };
}

/** Unit-norm image embeddings [B, E] from images [B, 32, 32, 3]. */
export function encodeImages(model: Model, images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => l2normalize(encodeImagesRaw(model.params, model.config.image, images)));
}

/** Unit-norm text embeddings [B, E] from token ids [B, L]. */
export function encodeTexts(model: Model, tokens: Int32Array, B: number): tf.Tensor2D {
  const L = model.config.text.contextLength;
  if (tokens.length !== B * L)
    throw new Error(`encodeTexts: expected ${B}×${L} token ids, got ${tokens.length}`);
  return tf.tidy(() => {
    const t = tf.tensor2d(tokens, [B, L], 'int32');
    const eot = endOfTextMask(tokens, B, L, model.endId);
    return l2normalize(encodeTextsRaw(model.params, model.config.text, t, eot));
  });
}

export * from './config';
export * from './params';
export { causalMask, endOfTextMask } from './text';
export { imageTokens, patchify, poolImage } from './vit';
