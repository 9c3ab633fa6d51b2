/**
 * The world's attributes and scene descriptions. A scene is a small record of
 * attribute indices plus a render seed (background, jitter, placement); rendering
 * and captioning are pure functions of it, so a training set is just a list of
 * scenes. Every attribute is drawn uniformly so no value is more frequent than its
 * siblings (frequency would otherwise become a shortcut for the embedding).
 */
import type { Rng } from '../rng';

export const SHAPES = ['circle', 'square', 'triangle', 'cross', 'ring', 'star', 'heart', 'diamond'];
export const COLOURS = ['red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink'];
/** Saturated, hue-separated RGB so colour names are unambiguous on dark backgrounds. */
export const COLOUR_RGB: ReadonlyArray<readonly [number, number, number]> = [
  [0.95, 0.12, 0.12],
  [1.0, 0.55, 0.05],
  [0.95, 0.92, 0.1],
  [0.15, 0.82, 0.2],
  [0.1, 0.88, 0.92],
  [0.18, 0.35, 1.0],
  [0.62, 0.2, 0.92],
  [1.0, 0.5, 0.8],
];
export const SIZES = ['small', 'large'];
export const TEXTURES = ['solid', 'striped', 'checkered'];
export const COUNTS = ['one', 'two', 'three'];
/** 3x3 grid cells, row-major: index = 3 * row + column. */
export const POSITIONS = [
  'top left',
  'top',
  'top right',
  'left',
  'center',
  'right',
  'bottom left',
  'bottom',
  'bottom right',
];
/** Single-word names of the Fashion-MNIST classes, in label order. */
export const GARMENTS = [
  'tshirt',
  'trousers',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'boot',
];

export type SceneKind = 'shape' | 'garment';

/** One scene: what is drawn (indices into the lists above) and how (seed). */
export interface Scene {
  kind: SceneKind;
  /** index into SHAPES, -1 for a garment scene */
  shape: number;
  /** Fashion-MNIST label, -1 for a shape scene */
  garment: number;
  /** image index in the Fashion-MNIST split `garmentSource`, -1 for shapes */
  garmentImage: number;
  garmentSource: 'train' | 'test';
  colour: number;
  size: number;
  /** index into TEXTURES, -1 for garments (they keep their own grey texture) */
  texture: number;
  /** 1..3 (garments: always 1) */
  count: number;
  /** index into POSITIONS when count = 1, else -1 (several objects have no single cell) */
  position: number;
  /** u32 seed of the background and placement jitter */
  seed: number;
}

/** Attributes a scene sampler may be told to fix (tasks fix the class attribute). */
export type SceneConstraints = Partial<
  Pick<Scene, 'kind' | 'shape' | 'garment' | 'colour' | 'size' | 'texture' | 'count' | 'position'>
>;

/** Pairs (a, colour) given as index pairs, kept out of the training split. */
export interface HeldOut {
  shapeColour: Array<[number, number]>;
  garmentColour: Array<[number, number]>;
}

/** What the sampler needs besides the constraints. */
export interface SamplerSpec {
  garmentProb: number;
  /** P(count = 1, 2, 3) for shapes */
  countProbs: readonly number[];
  heldOut: HeldOut;
  /** held-out pairs allowed (eval) or rejected (train) */
  allowHeldOut: boolean;
  /** held-out pairs required (compositional task queries) */
  onlyHeldOut?: boolean;
  /** per-class image indices of the Fashion-MNIST split garments come from (loaded lazily) */
  garmentPool: () => Int32Array[];
  garmentSource: 'train' | 'test';
}

/** Index of `name` in `list`, with an error that lists the valid names. */
export function indexOf(list: readonly string[], name: string, what: string): number {
  const i = list.indexOf(name);
  if (i < 0) throw new Error(`unknown ${what} '${name}' (known: ${list.join(', ')})`);
  return i;
}

function drawCount(rng: Rng, probs: readonly number[]): number {
  let u = rng.uniform();
  for (let i = 0; i < probs.length - 1; i++) {
    if (u < probs[i]) return i + 1;
    u -= probs[i];
  }
  return probs.length;
}

function isHeldPair(pairs: Array<[number, number]>, a: number, colour: number): boolean {
  for (const p of pairs) if (p[0] === a && p[1] === colour) return true;
  return false;
}

/** Whether a scene shows a held-out composition. */
export function isHeldOut(scene: Scene, heldOut: HeldOut): boolean {
  if (scene.kind === 'shape') return isHeldPair(heldOut.shapeColour, scene.shape, scene.colour);
  return isHeldPair(heldOut.garmentColour, scene.garment, scene.colour);
}

/** Scene literal with a fixed property order (one hidden class for every scene). */
function makeRecord(
  kind: SceneKind,
  shape: number,
  garment: number,
  garmentImage: number,
  garmentSource: 'train' | 'test',
  colour: number,
  size: number,
  texture: number,
  count: number,
  position: number,
  seed: number,
): Scene {
  return {
    kind,
    shape,
    garment,
    garmentImage,
    garmentSource,
    colour,
    size,
    texture,
    count,
    position,
    seed,
  };
}

/** One unconstrained draw of every attribute, then the constraints applied. */
function drawOnce(rng: Rng, c: SceneConstraints, spec: SamplerSpec): Scene {
  const kind: SceneKind = c.kind ?? (rng.uniform() < spec.garmentProb ? 'garment' : 'shape');
  const colour = c.colour ?? rng.int(COLOURS.length);
  const size = c.size ?? rng.int(SIZES.length);
  const seed = rng.nextU32();
  if (kind === 'shape') {
    const shape = c.shape ?? rng.int(SHAPES.length);
    const texture = c.texture ?? rng.int(TEXTURES.length);
    const count = c.count ?? drawCount(rng, spec.countProbs);
    const position = count === 1 ? (c.position ?? rng.int(POSITIONS.length)) : -1;
    const src = spec.garmentSource;
    return makeRecord(kind, shape, -1, -1, src, colour, size, texture, count, position, seed);
  }
  const garment = c.garment ?? rng.int(GARMENTS.length);
  const pool = spec.garmentPool();
  const garmentImage = pool[garment][rng.int(pool[garment].length)];
  const position = c.position ?? rng.int(POSITIONS.length);
  const src = spec.garmentSource;
  return makeRecord(kind, -1, garment, garmentImage, src, colour, size, -1, 1, position, seed);
}

/**
 * Draw a scene satisfying `c`, rejecting draws whose held-out status is not allowed
 * (train never shows a held-out pair; compositional queries show only those).
 * Rejection keeps the draw uniform over the allowed scenes.
 */
export function sampleScene(rng: Rng, c: SceneConstraints, spec: SamplerSpec): Scene {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const s = drawOnce(rng, c, spec);
    const held = isHeldOut(s, spec.heldOut);
    if (held && !spec.allowHeldOut) continue;
    if (!held && spec.onlyHeldOut) continue;
    return s;
  }
  throw new Error(`sampleScene: no scene satisfies ${JSON.stringify(c)} under the held-out rule`);
}
