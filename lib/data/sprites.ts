/**
 * Pre-rendered sprites. Shapes are anti-aliased coverage masks (4x4 supersampled
 * once at world creation) for every drawable size, so a frame only blends masks;
 * garments are resampled from 28x28 with precomputed sparse area-filter taps.
 * This is what keeps rendering a 256-image batch within a few milliseconds.
 */

/** Inside test of a shape in normalised coordinates: u right, v down, both in [-1, 1]. */
type Inside = (u: number, v: number) => boolean;

function inPolygon(pts: number[][], u: number, v: number): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function starPoints(outer: number, inner: number): number[][] {
  const pts: number[][] = [];
  for (let k = 0; k < 10; k++) {
    const r = k % 2 === 0 ? outer : inner;
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    pts.push([r * Math.cos(a), r * Math.sin(a) + 0.08]);
  }
  return pts;
}

const STAR = starPoints(1.08, 0.5);
const TRIANGLE = [
  [0, -1],
  [1, 0.85],
  [-1, 0.85],
];

/** Heart: the classic implicit curve, flipped so the point is at the bottom. */
function inHeart(u: number, v: number): boolean {
  const x = u * 1.2;
  const y = -v * 1.25 + 0.2;
  const a = x * x + y * y - 1;
  return a * a * a - x * x * y * y * y <= 0;
}

/** One inside test per entry of SHAPES, same order. Areas are roughly matched. */
const INSIDE: Inside[] = [
  (u, v) => u * u + v * v <= 1,
  (u, v) => Math.abs(u) <= 0.84 && Math.abs(v) <= 0.84,
  (u, v) => inPolygon(TRIANGLE, u, v),
  (u, v) => (Math.abs(u) <= 0.32 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.32 && Math.abs(u) <= 1),
  (u, v) => {
    const r2 = u * u + v * v;
    return r2 <= 1 && r2 >= 0.3;
  },
  (u, v) => inPolygon(STAR, u, v),
  inHeart,
  (u, v) => Math.abs(u) + Math.abs(v) <= 1.08,
];

export const SHAPE_COUNT = INSIDE.length;

/** Coverage mask [size*size] in [0, 1] of one shape, 4x4 supersampled. */
export function shapeMask(shape: number, size: number): Float32Array {
  const inside = INSIDE[shape];
  const mask = new Float32Array(size * size);
  const ss = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let hits = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const u = ((x + (sx + 0.5) / ss) / size) * 2 - 1;
          const v = ((y + (sy + 0.5) / ss) / size) * 2 - 1;
          if (inside(u, v)) hits++;
        }
      }
      mask[y * size + x] = hits / (ss * ss);
    }
  }
  return mask;
}

/** Masks for every shape and every size in `sizes`, looked up by `get(shape, size)`. */
export class ShapeBank {
  private masks = new Map<number, Float32Array>();

  constructor(sizes: readonly number[]) {
    for (let s = 0; s < SHAPE_COUNT; s++) {
      for (const size of sizes) this.masks.set(s * 1000 + size, shapeMask(s, size));
    }
  }

  get(shape: number, size: number): Float32Array {
    const m = this.masks.get(shape * 1000 + size);
    if (!m) throw new Error(`ShapeBank: no mask for shape ${shape} at size ${size}`);
    return m;
  }
}

/** Sparse area-filter taps resampling `src` samples to `dst` (3 taps is enough for dst >= 14). */
export interface Taps {
  dst: number;
  width: number;
  index: Int32Array;
  weight: Float32Array;
}

export function areaTaps(src: number, dst: number): Taps {
  const width = Math.ceil(src / dst) + 1;
  const index = new Int32Array(dst * width);
  const weight = new Float32Array(dst * width);
  const scale = src / dst;
  for (let o = 0; o < dst; o++) {
    const lo = o * scale;
    const hi = lo + scale;
    let k = 0;
    for (let i = Math.floor(lo); i < hi && i < src; i++) {
      const w = Math.min(hi, i + 1) - Math.max(lo, i);
      if (w <= 1e-6) continue;
      index[o * width + k] = i;
      weight[o * width + k] = w / scale;
      k++;
    }
  }
  return { dst, width, index, weight };
}

/**
 * Resample one 28x28 grey image (bytes at `src[offset..]`) to `t.dst`x`t.dst` in
 * [0, 1], separably: rows then columns. `tmp` must hold dst*28 floats, `out` dst*dst.
 */
export function resampleGarment(
  src: Uint8Array,
  offset: number,
  t: Taps,
  tmp: Float32Array,
  out: Float32Array,
): void {
  const n = 28;
  const { dst, width, index, weight } = t;
  for (let o = 0; o < dst; o++) {
    for (let x = 0; x < n; x++) {
      let acc = 0;
      for (let k = 0; k < width; k++)
        acc += weight[o * width + k] * src[offset + index[o * width + k] * n + x];
      tmp[o * n + x] = acc / 255;
    }
  }
  for (let o = 0; o < dst; o++) {
    for (let p = 0; p < dst; p++) {
      let acc = 0;
      for (let k = 0; k < width; k++)
        acc += weight[p * width + k] * tmp[o * n + index[p * width + k]];
      out[o * dst + p] = acc;
    }
  }
}
