/**
 * The lab's public API. Notebooks and external tests import from here.
 */
export { type BackendInfo, backendInfo, initBackend } from './backend/index';
export * from './config/presets';
export * from './config/schema';
export { encodePng, GARMENTS, imageGrid, SHAPES } from './data/index';
export * from './eval/evaluate';
export * from './eval/fewshot';
export * from './eval/fewshot-suite';
export * from './eval/mixing';
export * from './eval/probe';
export * from './eval/spectrum';
export * from './model/index';
export { checkShape, embed, l2normalize, layerNorm, logSigmoid, quickGelu } from './model/ops';
export * from './model/safetensors';
export * from './objectives/clip';
export * from './objectives/index';
export * from './objectives/lixp';
export * from './objectives/llip';
export * from './objectives/model';
export * from './objectives/siglip';
export * from './plot/dynamics';
export * from './plot/fewshot';
export * from './plot/heatmap';
export * from './plot/plot';
export * from './plot/table';
export { Rng } from './rng';
export * from './runs/checkpoint';
export * from './runs/experiment';
export * from './runs/fewshot-run';
export * from './runs/lixp-report';
export * from './runs/llip-report';
export * from './runs/report';
export * from './runs/report-claims';
export * from './runs/report-render';
export * from './train/loop';
export * from './train/optim';
export * from './train/step';
