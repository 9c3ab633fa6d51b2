/**
 * Image transforms for the domain-shifted tasks (never used in training), and the
 * plain Fashion-MNIST rendering: they test whether what the towers learned survives
 * noise, blur, inverted colours and the real grey-on-black garment photos.
 */
import type { Rng } from '../rng';
import type { FashionMnistSet } from './fashionMnist';
import { IMAGE_SIZE, PIXELS } from './types';

const S = IMAGE_SIZE;

function clampAt(img: Float32Array, i: number): void {
  img[i] = Math.min(1, Math.max(0, img[i]));
}

/** Add N(0, sigma^2) to every value of one image and clamp. */
export function addNoise(img: Float32Array, offset: number, rng: Rng, sigma: number): void {
  for (let i = offset; i < offset + PIXELS; i++) {
    img[i] += sigma * rng.normal();
    clampAt(img, i);
  }
}

/** One horizontal + vertical 3-tap box pass (edges clamp). */
function boxPass(img: Float32Array, offset: number, tmp: Float32Array): void {
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let d = -1; d <= 1; d++) {
          const xx = Math.max(0, Math.min(S - 1, x + d));
          acc += img[offset + (y * S + xx) * 3 + c];
        }
        tmp[(y * S + x) * 3 + c] = acc / 3;
      }
    }
  }
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let d = -1; d <= 1; d++) {
          const yy = Math.max(0, Math.min(S - 1, y + d));
          acc += tmp[(yy * S + x) * 3 + c];
        }
        img[offset + (y * S + x) * 3 + c] = acc / 3;
      }
    }
  }
}

/** Approximate Gaussian blur: `passes` separable 3x3 box filters. */
export function blur(img: Float32Array, offset: number, passes: number): void {
  const tmp = new Float32Array(PIXELS);
  for (let p = 0; p < passes; p++) boxPass(img, offset, tmp);
}

/** Colour inversion: v -> 1 - v. */
export function invert(img: Float32Array, offset: number): void {
  for (let i = offset; i < offset + PIXELS; i++) img[i] = 1 - img[i];
}

/** A raw Fashion-MNIST image, grey on black, padded from 28x28 to 32x32 (2 px border). */
export function renderPlainGarment(
  set: FashionMnistSet,
  index: number,
  out: Float32Array,
  offset: number,
): void {
  out.fill(0, offset, offset + PIXELS);
  const pad = (S - 28) / 2;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = set.images[index * 784 + y * 28 + x] / 255;
      const o = offset + ((y + pad) * S + x + pad) * 3;
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
    }
  }
}
