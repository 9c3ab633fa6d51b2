/**
 * The world: a seeded, procedural, compositional set of 32x32 image-caption pairs.
 * Each split is a fixed list of scene descriptions drawn once from the seed and
 * rendered on demand; captions are redrawn every time a scene is sampled. Held-out
 * shape-colour and garment-colour pairs never occur in the train split, and are
 * chosen so that no single attribute identifies them (every held-out colour pairs
 * with two held-out shapes and vice versa). Training scenes use Fashion-MNIST train
 * images; val/test scenes and all task images use its disjoint test images.
 */
import { Rng } from '../rng';
import { type CaptionOptions, describeScene } from './captions';
import { type FashionMnistSet, loadFashionMnist } from './fashionMnist';
import { vocabularyWords } from './language';
import { type RenderConfig, Renderer } from './render';
import {
  COLOURS,
  COUNTS,
  GARMENTS,
  type HeldOut,
  indexOf,
  isHeldOut,
  POSITIONS,
  type SamplerSpec,
  type Scene,
  type SceneConstraints,
  SHAPES,
  SIZES,
  sampleScene,
  TEXTURES,
} from './scene';
import { Tokenizer } from './tokenizer';
import { type Batch, PIXELS } from './types';

export type Split = 'train' | 'val' | 'test';

export interface WorldConfig extends RenderConfig, CaptionOptions {
  seed: number;
  /** fixed training scenes: enough that a 1-3k step run at batch 256 rarely repeats an image */
  trainScenes: number;
  valScenes: number;
  testScenes: number;
  /** share of garment scenes: garments are the hardest identity, so they get a big share */
  garmentProb: number;
  /** P(count = 1, 2, 3) of shape scenes; singletons get half because only they have a position */
  countProbs: [number, number, number];
  /** [shape, colour] names never drawn together in train */
  heldOutShapeColour: Array<[string, string]>;
  /** [garment, colour] names never drawn together in train */
  heldOutGarmentColour: Array<[string, string]>;
  /** val/test include held-out pairs at their natural rate (so val retrieval sees them) */
  evalIncludesHeldOut: boolean;
  /** token ids per caption, END included: the longest caption is 15 words */
  contextLength: number;
  /** Fashion-MNIST idx directory (default: $FASHION_MNIST_DIR or the Debian package path) */
  fashionMnistDir?: string;
}

export const defaultWorldConfig: WorldConfig = {
  seed: 1,
  trainScenes: 50000,
  valScenes: 2000,
  testScenes: 2000,
  garmentProb: 0.4,
  countProbs: [0.5, 0.25, 0.25],
  // Two 4-cycles: each held-out shape (garment) has two held-out colours and each
  // held-out colour two held-out shapes (garments), so neither attribute alone solves them.
  heldOutShapeColour: [
    ['star', 'red'],
    ['star', 'blue'],
    ['ring', 'blue'],
    ['ring', 'yellow'],
    ['heart', 'yellow'],
    ['heart', 'green'],
    ['triangle', 'green'],
    ['triangle', 'red'],
  ],
  heldOutGarmentColour: [
    ['dress', 'orange'],
    ['dress', 'cyan'],
    ['sneaker', 'cyan'],
    ['sneaker', 'purple'],
    ['bag', 'purple'],
    ['bag', 'pink'],
    ['coat', 'pink'],
    ['coat', 'orange'],
  ],
  evalIncludesHeldOut: true,
  contextLength: 16,
  mentionProb: 0.6,
  nounProb: 0.85,
  clauseProb: 0.25,
  background: { maxSaturation: 0.45, valueRange: [0.02, 0.42], noiseMax: 0.08, gradientMax: 0.25 },
  shapeSizes: [
    [9, 10, 11],
    [15, 16, 17],
  ],
  garmentSizes: [
    [16, 17, 18],
    [22, 23, 24],
  ],
  colourJitter: 0.08,
};

/** The attribute value names of the world, for display and tests. */
export interface WorldAttributes {
  shapes: string[];
  colours: string[];
  sizes: string[];
  textures: string[];
  counts: string[];
  positions: string[];
  garments: string[];
}

export interface World {
  config: WorldConfig;
  tokenizer: Tokenizer;
  attributes: WorldAttributes;
  /** held-out pairs as [shape or garment index, colour index] */
  heldOut: HeldOut;
  /** the fixed scene list of a split */
  scenes(split: Split): readonly Scene[];
  /** `batchSize` scenes drawn uniformly with replacement, rendered, freshly captioned */
  sampleBatch(rng: Rng, batchSize: number, split?: Split): Batch;
  /** the scenes `sampleBatch` would draw (uniform with replacement from the split) */
  sampleScenes(rng: Rng, count: number, split?: Split): Scene[];
  /** render and freshly caption given scenes (e.g. a fixed retrieval set) */
  batchFromScenes(scenes: readonly Scene[], rng: Rng): Batch;
  /** a new scene obeying `constraints` (tasks); garments from the Fashion-MNIST test split */
  makeScene(rng: Rng, constraints: SceneConstraints, heldOut: 'allow' | 'avoid' | 'only'): Scene;
  renderScene(scene: Scene): Float32Array;
  renderInto(scene: Scene, out: Float32Array, offset: number): void;
  describe(scene: Scene, rng: Rng): string;
  isHeldOut(scene: Scene): boolean;
  /** Fashion-MNIST split (loaded on first use) */
  fashion(source: 'train' | 'test'): FashionMnistSet;
}

function resolveHeldOut(cfg: WorldConfig): HeldOut {
  return {
    shapeColour: cfg.heldOutShapeColour.map(([s, c]) => [
      indexOf(SHAPES, s, 'shape'),
      indexOf(COLOURS, c, 'colour'),
    ]),
    garmentColour: cfg.heldOutGarmentColour.map(([g, c]) => [
      indexOf(GARMENTS, g, 'garment'),
      indexOf(COLOURS, c, 'colour'),
    ]),
  };
}

/** The World implementation: scene lists are built lazily, once per split. */
class ProceduralWorld implements World {
  readonly tokenizer: Tokenizer;
  readonly heldOut: HeldOut;
  readonly attributes: WorldAttributes = {
    shapes: [...SHAPES],
    colours: [...COLOURS],
    sizes: [...SIZES],
    textures: [...TEXTURES],
    counts: [...COUNTS],
    positions: [...POSITIONS],
    garments: [...GARMENTS],
  };
  private readonly renderer: Renderer;
  private readonly splitSeeds: Record<Split, number>;
  private readonly cache = new Map<Split, Scene[]>();

  constructor(readonly config: WorldConfig) {
    this.heldOut = resolveHeldOut(config);
    this.renderer = new Renderer(config, (source) => this.fashion(source));
    this.tokenizer = new Tokenizer(vocabularyWords(), config.contextLength);
    // One seed per split, so building val never shifts train.
    const root = new Rng(config.seed);
    this.splitSeeds = { train: root.nextU32(), val: root.nextU32(), test: root.nextU32() };
  }

  fashion(source: 'train' | 'test'): FashionMnistSet {
    return loadFashionMnist(source, this.config.fashionMnistDir);
  }

  /** Sampler settings: train garments from Fashion-MNIST train, everything else from test. */
  private spec(source: 'train' | 'test', allow: boolean, only = false): SamplerSpec {
    return {
      garmentProb: this.config.garmentProb,
      countProbs: this.config.countProbs,
      heldOut: this.heldOut,
      allowHeldOut: allow,
      onlyHeldOut: only,
      garmentPool: () => this.fashion(source).byClass,
      garmentSource: source,
    };
  }

  scenes(split: Split): readonly Scene[] {
    let list = this.cache.get(split);
    if (!list) {
      const c = this.config;
      const n = split === 'train' ? c.trainScenes : split === 'val' ? c.valScenes : c.testScenes;
      const sp =
        split === 'train' ? this.spec('train', false) : this.spec('test', c.evalIncludesHeldOut);
      const r = new Rng(this.splitSeeds[split]);
      list = [];
      for (let i = 0; i < n; i++) list.push(sampleScene(r, {}, sp));
      this.cache.set(split, list);
    }
    return list;
  }

  sampleScenes(rng: Rng, count: number, split: Split = 'train'): Scene[] {
    const list = this.scenes(split);
    const out: Scene[] = [];
    for (let b = 0; b < count; b++) out.push(list[rng.int(list.length)]);
    return out;
  }

  batchFromScenes(scenes: readonly Scene[], rng: Rng): Batch {
    const images = new Float32Array(scenes.length * PIXELS);
    const captions: string[] = [];
    for (let b = 0; b < scenes.length; b++) {
      this.renderer.renderInto(scenes[b], images, b * PIXELS);
      captions.push(this.describe(scenes[b], rng));
    }
    const tokens = this.tokenizer.encodeBatch(captions);
    const identity = Int32Array.from(scenes, (s) =>
      s.shape >= 0 ? s.shape : SHAPES.length + s.garment,
    );
    return { images, tokens, captions, size: scenes.length, identity };
  }

  sampleBatch(rng: Rng, batchSize: number, split: Split = 'train'): Batch {
    return this.batchFromScenes(this.sampleScenes(rng, batchSize, split), rng);
  }

  makeScene(rng: Rng, constraints: SceneConstraints, mode: 'allow' | 'avoid' | 'only'): Scene {
    return sampleScene(rng, constraints, this.spec('test', mode !== 'avoid', mode === 'only'));
  }

  renderScene(scene: Scene): Float32Array {
    return this.renderer.render(scene);
  }

  renderInto(scene: Scene, out: Float32Array, offset: number): void {
    this.renderer.renderInto(scene, out, offset);
  }

  describe(scene: Scene, rng: Rng): string {
    return describeScene(scene, rng, this.config);
  }

  isHeldOut(scene: Scene): boolean {
    return isHeldOut(scene, this.heldOut);
  }
}

/** A world from `defaultWorldConfig` with `overrides` applied. */
export function createWorld(overrides: Partial<WorldConfig> = {}): World {
  return new ProceduralWorld({ ...defaultWorldConfig, ...overrides });
}
