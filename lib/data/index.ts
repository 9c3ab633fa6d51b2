/**
 * Public API of the data layer: the procedural world, its tokenizer, the task
 * suite, the Fashion-MNIST loader and the PNG preview helpers.
 */
export { type CaptionOptions, describeScene } from './captions';
export {
  clearFashionMnistCache,
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_PACKAGE,
  type FashionMnistSet,
  type FashionSplit,
  type IdxFile,
  loadFashionMnist,
  readIdx,
} from './fashionMnist';
export { PROMPTS, vocabularyWords } from './language';
export { encodePng, imageGrid } from './png';
export type { BackgroundConfig, RenderConfig } from './render';
export {
  COLOURS,
  COUNTS,
  GARMENTS,
  type HeldOut,
  POSITIONS,
  type Scene,
  type SceneConstraints,
  type SceneKind,
  SHAPES,
  SIZES,
  TEXTURES,
} from './scene';
export { addNoise, blur, invert, renderPlainGarment } from './shifts';
export { buildTaskSuite, type TaskSuiteOptions } from './tasks';
export { normalizeWords, Tokenizer } from './tokenizer';
export * from './types';
export {
  createWorld,
  defaultWorldConfig,
  type Split,
  type World,
  type WorldAttributes,
  type WorldConfig,
} from './world';
