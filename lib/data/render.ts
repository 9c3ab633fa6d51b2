/**
 * Scene -> 32x32 RGB float image. Backgrounds get a random hue, brightness, linear
 * gradient and noise so that neither the background nor global brightness says
 * anything about the caption; objects are saturated and crisp so shape, colour and
 * garment identity are all readable at this resolution. Everything random comes
 * from `new Rng(scene.seed)`, so an image is a pure function of its scene.
 */
import { Rng } from '../rng';
import type { FashionMnistSet } from './fashionMnist';
import { COLOUR_RGB, type Scene } from './scene';
import { areaTaps, resampleGarment, ShapeBank, type Taps } from './sprites';
import { IMAGE_SIZE, PIXELS } from './types';

const S = IMAGE_SIZE;

export interface BackgroundConfig {
  /** max HSV saturation: kept low so the object is the only strongly coloured thing */
  maxSaturation: number;
  /** HSV value range: dark-to-mid so every object colour keeps contrast */
  valueRange: [number, number];
  /** max std of the per-pixel noise */
  noiseMax: number;
  /** max brightness change across the linear gradient */
  gradientMax: number;
}

export interface RenderConfig {
  background: BackgroundConfig;
  /** shape side in px for [small, large]; a few values so size is a range, not a template */
  shapeSizes: [number[], number[]];
  /** side of the 28x28 garment frame after scaling, for [small, large] */
  garmentSizes: [number[], number[]];
  /** max per-channel colour jitter, so a colour is a region of RGB, not one point */
  colourJitter: number;
}

/** HSV (all in [0, 1]) to RGB. */
export function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5), f(3), f(1)];
}

/** Top-left of an object of side `px` in grid cell `i` (0, 1, 2) along one axis. */
function cellStart(i: number, px: number, overhang: number, rng: Rng): number {
  const lo = px / 2 + 1 - overhang;
  const hi = S - px / 2 - 1 + overhang;
  const centre = i === 0 ? lo : i === 1 ? S / 2 : hi;
  return Math.round(centre - px / 2 + rng.int(3) - 1);
}

/** Largest side of one of several objects: 2 x 14 px + a 4 px gap keeps them apart. */
const MULTI_MAX = 14;

/** Start along one axis in half `h` (0 or 1), pushed toward the image edge by `inset`. */
function halfStart(h: number, px: number, inset: number): number {
  return h === 0 ? inset : S - px - inset;
}

/**
 * Top-left corners of `count` objects in distinct quadrants. Each object hugs its
 * quadrant's outer corner (plus jitter), so neighbours never touch and the count
 * stays readable even for large objects.
 */
function quadrantStarts(count: number, px: number, rng: Rng): number[][] {
  const quads = rng.shuffle([0, 1, 2, 3]).slice(0, count);
  const slack = Math.max(0, MULTI_MAX - px);
  return quads.map((q) => [
    halfStart(q % 2, px, rng.int(slack + 1)),
    halfStart(q >> 1, px, rng.int(slack + 1)),
  ]);
}

export class Renderer {
  private readonly bank: ShapeBank;
  private readonly noise: Float32Array;
  private readonly taps = new Map<number, Taps>();
  private readonly tmp = new Float32Array(28 * 28);
  private readonly sprite = new Float32Array(28 * 28);

  /** `garments(source)` returns the Fashion-MNIST split a garment scene points into. */
  constructor(
    readonly cfg: RenderConfig,
    private readonly garments: (source: 'train' | 'test') => FashionMnistSet,
  ) {
    this.bank = new ShapeBank([...cfg.shapeSizes[0], ...cfg.shapeSizes[1], MULTI_MAX]);
    for (const f of [...cfg.garmentSizes[0], ...cfg.garmentSizes[1]])
      this.taps.set(f, areaTaps(28, f));
    // A fixed bank of normals: per-pixel Box-Muller would dominate the frame time.
    const r = new Rng(0x5eed);
    this.noise = new Float32Array(1 << 16);
    for (let i = 0; i < this.noise.length; i++) this.noise[i] = r.normal();
  }

  /** Render `scene` into `out[offset .. offset + 32*32*3)`. */
  renderInto(scene: Scene, out: Float32Array, offset: number): void {
    const rng = new Rng(scene.seed);
    this.background(out, offset, rng);
    const colour = this.jitter(scene.colour, rng);
    if (scene.kind === 'shape') this.drawShapes(scene, colour, out, offset, rng);
    else this.drawGarment(scene, colour, out, offset, rng);
  }

  render(scene: Scene): Float32Array {
    const out = new Float32Array(PIXELS);
    this.renderInto(scene, out, 0);
    return out;
  }

  private background(out: Float32Array, offset: number, rng: Rng): void {
    const b = this.cfg.background;
    const hue = rng.uniform();
    const sat = rng.uniform() * b.maxSaturation;
    const val = b.valueRange[0] + rng.uniform() * (b.valueRange[1] - b.valueRange[0]);
    const c1 = hsv(hue, sat, val);
    const val2 = Math.max(0, Math.min(1, val + (rng.uniform() * 2 - 1) * b.gradientMax));
    const c2 = hsv((hue + (rng.uniform() - 0.5) * 0.2 + 1) % 1, sat, val2);
    const theta = rng.uniform() * 2 * Math.PI;
    const sigma = rng.uniform() * b.noiseMax;
    const n0 = rng.int(this.noise.length - PIXELS);
    fillBackground(out, offset, c1, c2, theta, sigma, this.noise, n0);
  }

  private jitter(colour: number, rng: Rng): number[] {
    const base = COLOUR_RGB[colour];
    const j = this.cfg.colourJitter;
    const bright = 1 - rng.uniform() * j;
    return base.map((v) => Math.max(0, Math.min(1, v * bright + (rng.uniform() * 2 - 1) * j)));
  }

  private drawShapes(s: Scene, rgb: number[], out: Float32Array, offset: number, rng: Rng): void {
    let px = rng.pick(this.cfg.shapeSizes[s.size]);
    if (s.count > 1) px = Math.min(px, MULTI_MAX);
    const mask = this.bank.get(s.shape, px);
    // Texture second colour: a light tint of the object colour, so the hue survives.
    const tint = rgb.map((v) => v + (1 - v) * 0.6);
    const starts =
      s.count === 1
        ? [
            [
              cellStart(s.position % 3, px, 0, rng),
              cellStart(Math.floor(s.position / 3), px, 0, rng),
            ],
          ]
        : quadrantStarts(s.count, px, rng);
    for (const [x0, y0] of starts) blendShape(out, offset, mask, px, x0, y0, rgb, tint, s.texture);
  }

  private drawGarment(s: Scene, rgb: number[], out: Float32Array, offset: number, rng: Rng): void {
    const f = rng.pick(this.cfg.garmentSizes[s.size]);
    const set = this.garments(s.garmentSource);
    resampleGarment(set.images, s.garmentImage * 784, this.taps.get(f)!, this.tmp, this.sprite);
    const x0 = cellStart(s.position % 3, f, 1, rng);
    const y0 = cellStart(Math.floor(s.position / 3), f, 1, rng);
    blendGarment(out, offset, this.sprite, f, x0, y0, rgb);
  }
}

/**
 * Linear gradient from c1 to c2 along direction `theta`, plus noise from the bank,
 * clamped to [0, 1] here: objects are convex blends of in-range colours, so the
 * image needs no second clamping pass.
 */
function fillBackground(
  out: Float32Array,
  offset: number,
  c1: number[],
  c2: number[],
  theta: number,
  sigma: number,
  nz: Float32Array,
  n0: number,
): void {
  const gx = Math.cos(theta) / (S - 1);
  const gy = Math.sin(theta) / (S - 1);
  const [r1, g1, b1] = c1;
  const dr = c2[0] - r1;
  const dg = c2[1] - g1;
  const db = c2[2] - b1;
  let n = n0;
  let o = offset;
  for (let y = 0; y < S; y++) {
    let t = 0.5 - 15.5 * gx + (y - 15.5) * gy;
    for (let x = 0; x < S; x++, t += gx, o += 3, n += 3) {
      out[o] = Math.min(1, Math.max(0, r1 + t * dr + sigma * nz[n]));
      out[o + 1] = Math.min(1, Math.max(0, g1 + t * dg + sigma * nz[n + 1]));
      out[o + 2] = Math.min(1, Math.max(0, b1 + t * db + sigma * nz[n + 2]));
    }
  }
}

/** Alpha-blend a shape mask; texture 1 = diagonal stripes, 2 = checks (2 px cells). */
function blendShape(
  out: Float32Array,
  offset: number,
  mask: Float32Array,
  px: number,
  x0: number,
  y0: number,
  rgb: number[],
  tint: number[],
  texture: number,
): void {
  for (let j = 0; j < px; j++) {
    const y = y0 + j;
    if (y < 0 || y >= S) continue;
    for (let i = 0; i < px; i++) {
      const x = x0 + i;
      const a = mask[j * px + i];
      if (a === 0 || x < 0 || x >= S) continue;
      const off =
        texture === 1 ? ((i + j) >> 1) & 1 : texture === 2 ? ((i >> 1) + (j >> 1)) & 1 : 0;
      const c = off ? tint : rgb;
      const o = offset + (y * S + x) * 3;
      out[o] += a * (c[0] - out[o]);
      out[o + 1] += a * (c[1] - out[o + 1]);
      out[o + 2] += a * (c[2] - out[o + 2]);
    }
  }
}

/**
 * Colourise a grey garment: the grey level (normalised to the image's max) is both
 * opacity and shading, so the garment's own folds and seams stay visible.
 */
function blendGarment(
  out: Float32Array,
  offset: number,
  g: Float32Array,
  f: number,
  x0: number,
  y0: number,
  rgb: number[],
): void {
  let max = 1e-6;
  for (let i = 0; i < f * f; i++) if (g[i] > max) max = g[i];
  for (let j = 0; j < f; j++) {
    const y = y0 + j;
    if (y < 0 || y >= S) continue;
    for (let i = 0; i < f; i++) {
      const x = x0 + i;
      const v = g[j * f + i] / max;
      if (v <= 0.004 || x < 0 || x >= S) continue;
      const a = Math.min(1, v * 3);
      const shade = 0.3 + 0.7 * v;
      const o = offset + (y * S + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] += a * (rgb[c] * shade - out[o + c]);
    }
  }
}
