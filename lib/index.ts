/**
 * The lab's public API. Notebooks and external tests import from here.
 */
export { type BackendInfo, backendInfo, initBackend } from './backend/index';
export * from './config/schema';
export * from './eval/evaluate';
export * from './model/index';
export { checkShape, embed, l2normalize, layerNorm, logSigmoid, quickGelu } from './model/ops';
export * from './objectives/lixp';
export * from './objectives/llip';
export * from './objectives/siglip';
export { Rng } from './rng';
export * from './runs/checkpoint';
export * from './train/loop';
export * from './train/optim';
