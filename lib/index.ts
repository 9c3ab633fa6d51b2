/**
 * The lab's public API. Notebooks and external tests import from here.
 */
export { type BackendInfo, backendInfo, initBackend } from './backend';
export * from './checkpoint';
export * from './config';
export * from './eval';
export * from './lixp';
export * from './llip';
export * from './losses';
export * from './model/index';
export { checkShape, embed, l2normalize, layerNorm, logSigmoid, quickGelu } from './ops';
export * from './optim';
export { Rng } from './rng';
export * from './train';
