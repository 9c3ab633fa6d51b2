/**
 * The downstream task suite for zero-shot and few-shot evaluation. Each task fixes
 * one attribute (the class) and draws every other attribute at random, so no
 * confounder solves it. Garments come from the Fashion-MNIST TEST split, which the
 * training scenes never use: support from its first half, queries from its second,
 * and support and query images from different random streams.
 */
import { Rng } from '../rng';
import { PROMPTS } from './language';
import { COLOURS, GARMENTS, type Scene, type SceneConstraints, SHAPES } from './scene';
import { addNoise, blur, invert, renderPlainGarment } from './shifts';
import { type LabelledImages, PIXELS, type Task } from './types';
import type { World } from './world';

export interface TaskSuiteOptions {
  /** seed of every task image (independent of the world seed, so suites can be redrawn) */
  seed?: number;
  /** query images per class */
  queryPerClass?: number;
  /** support-pool images per class (>= 16 so k-shot works up to k = 16) */
  supportPerClass?: number;
}

type Part = 'support' | 'query';

/** How one task draws an image of class `cls` into `out` at `offset`. */
type Draw = (cls: number, part: Part, rng: Rng, out: Float32Array, offset: number) => void;

interface TaskSpec {
  name: string;
  description: string;
  classNames: string[];
  templates: string[];
  draw: Draw;
}

type HeldMode = 'allow' | 'avoid' | 'only';

/** Image indices per garment class for one part: first half of t10k = support, second = query. */
function garmentPools(world: World): Record<Part, Int32Array[]> {
  const set = world.fashion('test');
  const half = Math.floor(set.count / 2);
  return {
    support: set.byClass.map((ix) => ix.filter((i) => i < half)),
    query: set.byClass.map((ix) => ix.filter((i) => i >= half)),
  };
}

/** Draw function for world scenes with constraints `c(cls)`, then an optional shift. */
function sceneDraw(
  world: World,
  pools: Record<Part, Int32Array[]>,
  c: (cls: number) => SceneConstraints,
  mode: (part: Part) => HeldMode,
  shift?: (img: Float32Array, offset: number, rng: Rng) => void,
): Draw {
  return (cls, part, rng, out, offset) => {
    const scene: Scene = world.makeScene(rng, c(cls), mode(part));
    if (scene.kind === 'garment') {
      const pool = pools[part][scene.garment];
      scene.garmentImage = pool[rng.int(pool.length)];
    }
    world.renderInto(scene, out, offset);
    if (shift) shift(out, offset, rng);
  };
}

/** The held-out pairs' class names ("red star") and constraints. */
function heldPairs(world: World, kind: 'shape' | 'garment') {
  const pairs = kind === 'shape' ? world.heldOut.shapeColour : world.heldOut.garmentColour;
  const names = kind === 'shape' ? SHAPES : GARMENTS;
  return {
    classNames: pairs.map(([a, c]) => `${COLOURS[c]} ${names[a]}`),
    constraint: (cls: number): SceneConstraints =>
      kind === 'shape'
        ? { kind, shape: pairs[cls][0], colour: pairs[cls][1] }
        : { kind, garment: pairs[cls][0], colour: pairs[cls][1] },
  };
}

/** Distinct shapes of the held-out shape-colour pairs, in first-seen order. */
function heldShapes(world: World): number[] {
  const out: number[] = [];
  for (const [s] of world.heldOut.shapeColour) if (out.indexOf(s) < 0) out.push(s);
  return out;
}

/** The attribute tasks (in-distribution: held-out pairs avoided). */
function attributeSpecs(world: World, pools: Record<Part, Int32Array[]>): TaskSpec[] {
  const avoid = () => 'avoid' as const;
  const d = (c: (cls: number) => SceneConstraints) => sceneDraw(world, pools, c, avoid);
  const a = world.attributes;
  return [
    {
      name: 'shape',
      description: 'which of 8 shapes (any colour, size, texture, count, position)',
      classNames: a.shapes,
      templates: PROMPTS.object,
      draw: d((shape) => ({ kind: 'shape', shape })),
    },
    {
      name: 'colour',
      description: 'object colour (shapes and garments)',
      classNames: a.colours,
      templates: PROMPTS.colour,
      draw: d((colour) => ({ colour })),
    },
    {
      name: 'size',
      description: 'small or large (shapes and garments)',
      classNames: a.sizes,
      templates: PROMPTS.size,
      draw: d((size) => ({ size })),
    },
    {
      name: 'position',
      description: '3x3 grid cell of a single object',
      classNames: a.positions,
      templates: PROMPTS.position,
      draw: d((position) => ({ position, count: 1 })),
    },
    {
      name: 'count',
      description: 'how many copies of one shape (1-3)',
      classNames: a.counts,
      templates: PROMPTS.count,
      draw: d((cls) => ({ kind: 'shape', count: cls + 1 })),
    },
    {
      name: 'texture',
      description: 'solid, striped or checkered shapes',
      classNames: a.textures,
      templates: PROMPTS.texture,
      draw: d((texture) => ({ kind: 'shape', texture })),
    },
    {
      name: 'garment',
      description: 'Fashion-MNIST class of a colourised garment (test images)',
      classNames: a.garments,
      templates: PROMPTS.object,
      draw: d((garment) => ({ kind: 'garment', garment })),
    },
    {
      name: 'garment-colour',
      description: 'colour of a garment',
      classNames: a.colours,
      templates: PROMPTS.garmentColour,
      draw: d((colour) => ({ kind: 'garment', colour })),
    },
  ];
}

/** Held-out compositions: classes are pairs never seen in training. */
function compositionSpecs(world: World, pools: Record<Part, Int32Array[]>): TaskSpec[] {
  const hs = heldPairs(world, 'shape');
  const hg = heldPairs(world, 'garment');
  const shapes = heldShapes(world);
  const only = () => 'only' as const;
  return [
    {
      name: 'heldout-shape-colour',
      description:
        'shape-colour pairs never seen in training; each colour and shape occurs in two classes',
      classNames: hs.classNames,
      templates: PROMPTS.object,
      draw: sceneDraw(world, pools, hs.constraint, only),
    },
    {
      name: 'heldout-garment-colour',
      description:
        'garment-colour pairs never seen in training; each colour and garment occurs in two classes',
      classNames: hg.classNames,
      templates: PROMPTS.object,
      draw: sceneDraw(world, pools, hg.constraint, only),
    },
    {
      name: 'shape-compositional',
      description:
        'held-out shapes: support in seen colours, queries only in their held-out colours (colour-biased embeddings fall below chance)',
      classNames: shapes.map((s) => SHAPES[s]),
      templates: PROMPTS.object,
      draw: sceneDraw(
        world,
        pools,
        (cls) => ({ kind: 'shape', shape: shapes[cls] }),
        (part) => (part === 'support' ? 'avoid' : 'only'),
      ),
    },
  ];
}

/** Domain-shifted variants and real, uncolourised Fashion-MNIST. */
function shiftSpecs(world: World, pools: Record<Part, Int32Array[]>): TaskSpec[] {
  const avoid = () => 'avoid' as const;
  const shape = (s: number): SceneConstraints => ({ kind: 'shape', shape: s });
  const garment = (g: number): SceneConstraints => ({ kind: 'garment', garment: g });
  const set = world.fashion('test');
  const plain: Draw = (cls, part, rng, out, offset) => {
    const pool = pools[part][cls];
    renderPlainGarment(set, pool[rng.int(pool.length)], out, offset);
  };
  return [
    {
      name: 'shape-noise',
      description: 'shape under strong Gaussian pixel noise (sigma 0.15)',
      classNames: world.attributes.shapes,
      templates: PROMPTS.object,
      draw: sceneDraw(world, pools, shape, avoid, (im, o, r) => addNoise(im, o, r, 0.15)),
    },
    {
      name: 'shape-blur',
      description: 'shape after a 3x3 box blur',
      classNames: world.attributes.shapes,
      templates: PROMPTS.object,
      draw: sceneDraw(world, pools, shape, avoid, (im, o) => blur(im, o, 1)),
    },
    {
      name: 'garment-inverted',
      description: 'garment class with inverted colours (light background)',
      classNames: world.attributes.garments,
      templates: PROMPTS.object,
      draw: sceneDraw(world, pools, garment, avoid, (im, o) => invert(im, o)),
    },
    {
      name: 'fashion-mnist',
      description: 'real Fashion-MNIST test images, grey on black, padded to 32x32',
      classNames: world.attributes.garments,
      templates: PROMPTS.object,
      draw: plain,
    },
  ];
}

/** `perClass` images of every class in a shuffled order, labels balanced exactly. */
function drawSet(spec: TaskSpec, part: Part, perClass: number, rng: Rng): LabelledImages {
  const n = spec.classNames.length * perClass;
  const order: number[] = [];
  for (let i = 0; i < n; i++) order.push(i % spec.classNames.length);
  const labels = Int32Array.from(rng.shuffle(order));
  const images = new Float32Array(n * PIXELS);
  for (let i = 0; i < n; i++) spec.draw(labels[i], part, rng, images, i * PIXELS);
  return { images, labels, size: n };
}

/** Build the full suite (15 tasks), deterministic from `opts.seed`. */
export function buildTaskSuite(world: World, opts: TaskSuiteOptions = {}): Task[] {
  const seed = opts.seed ?? 2024;
  const queryPerClass = opts.queryPerClass ?? 50;
  const supportPerClass = opts.supportPerClass ?? 16;
  const pools = garmentPools(world);
  const specs = [
    ...attributeSpecs(world, pools),
    ...compositionSpecs(world, pools),
    ...shiftSpecs(world, pools),
  ];
  return specs.map((spec, i) => {
    const base = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
    const support = drawSet(spec, 'support', supportPerClass, new Rng(base ^ 0x51));
    const query = drawSet(spec, 'query', queryPerClass, new Rng(base ^ 0xa7));
    const { name, description, classNames, templates } = spec;
    return {
      name,
      description,
      classNames,
      templates,
      support,
      query,
      chance: 1 / classNames.length,
    };
  });
}
