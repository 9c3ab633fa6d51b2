/**
 * The image tower: a small ViT. Patchify by reshape/transpose (the wasm backend has
 * no Conv2DBackpropFilter, and a patch embedding is just a matmul), learned
 * positions, optional cls/register/mixture tokens, pre-LN blocks, then one of
 * the poolers below:
 *   cls  — the first token; mean — mean of the patch tokens;
 *   map  — multihead attention pooling with a learned probe (big_vision's MAP head).
 * Token order: [cls] [registers] [mixture tokens] [patches].
 */
import * as tf from '@tensorflow/tfjs';
import type { ImagePool, ImageTowerConfig } from './config';
import { block, blockSpecs, dense, norm } from './layers';
import { attentionPool } from './ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from './params';

/** [B, S, S, C] → [B·N, p·p·C], patches in row-major order. */
export function patchify(images: tf.Tensor4D, patch: number): tf.Tensor2D {
  const [B, S, , C] = images.shape;
  const g = S / patch;
  return tf.tidy(() =>
    tf.reshape(
      tf.transpose(tf.reshape(images, [B * g, patch, g, patch * C]), [0, 2, 1, 3]), // [B·g, g, p, p·C]
      [B * g * g, patch * patch * C],
    ),
  );
}

/** How a pooling method turns the tower's tokens into one vector per image. */
interface Pooler {
  tokens: number; // learned tokens it adds at the front of the sequence (cls: 1)
  specs: (D: number) => ParamSpecs;
  /** tokens [B, T, D] and the layout → [B, D] */
  pool: (p: Params, t3: tf.Tensor3D, layout: TokenLayout, heads: number) => tf.Tensor2D;
}

/** The patch tokens [B, N, D] of the whole sequence [B, T, D]. */
function patchSlice(t3: tf.Tensor3D, L: TokenLayout): tf.Tensor3D {
  const [B, , D] = t3.shape;
  const first = L.extra + L.mixture;
  return first > 0 ? tf.slice(t3, [0, first, 0], [B, L.patches, D]) : t3;
}

/** Multihead attention pooling of [B, T, D] tokens into [B, D] with a learned probe. */
function mapPool(p: Params, tokens: tf.Tensor3D, heads: number): tf.Tensor2D {
  const [B, T, D] = tokens.shape;
  const q = dense(p, 'img.map.q', p['img.map.probe'] as tf.Tensor2D); // [1, D]
  const kv = dense(p, 'img.map.kv', tf.reshape(tokens, [B * T, D]) as tf.Tensor2D); // [B·T, 2D]: k | v
  return dense(p, 'img.map.proj', attentionPool(kv, q, B, heads));
}

/** One pooler per name of IMAGE_POOLS (the Record type keeps the two in step). */
const POOLERS: Record<ImagePool, Pooler> = {
  cls: {
    tokens: 1,
    specs: () => ({}),
    pool: (_p, t3) => {
      const [B, , D] = t3.shape;
      return tf.reshape(tf.slice(t3, [0, 0, 0], [B, 1, D]), [B, D]);
    },
  },
  mean: {
    tokens: 0,
    specs: () => ({}),
    pool: (_p, t3, L) => tf.mean(patchSlice(t3, L), 1) as tf.Tensor2D,
  },
  map: {
    tokens: 0,
    specs: (D) => ({
      'img.map.probe': { shape: [1, D], init: 'normal', std: 0.02, decay: false },
      ...denseSpecs('img.map.q', D, D),
      ...denseSpecs('img.map.kv', D, 2 * D),
      ...denseSpecs('img.map.proj', D, D),
    }),
    pool: (p, t3, L, heads) => mapPool(p, patchSlice(t3, L), heads),
  },
};

/** Where each kind of token sits: `extra` (cls + registers), then `mixture`, then `patches`. */
export interface TokenLayout {
  extra: number;
  mixture: number;
  patches: number;
}

export function imageTokenLayout(im: ImageTowerConfig): TokenLayout {
  const side = im.imageSize / im.patch;
  const extra = POOLERS[im.pool].tokens + im.registers;
  return { extra, mixture: im.mixtureTokens ?? 0, patches: side * side };
}

export function imageTowerSpecs(im: ImageTowerConfig, embedDim: number): ParamSpecs {
  const { extra, mixture, patches } = imageTokenLayout(im);
  const D = im.width;
  const specs: ParamSpecs = {
    ...denseSpecs('img.patch', im.patch * im.patch * 3, D),
    'img.pos': { shape: [patches, D], init: 'normal', std: 0.02, decay: false },
  };
  if (extra > 0)
    specs['img.extra'] = { shape: [extra, D], init: 'normal', std: 0.02, decay: false };
  if (mixture > 0)
    specs['img.mixture'] = { shape: [mixture, D], init: 'normal', std: 0.02, decay: false };
  for (let i = 0; i < im.depth; i++)
    Object.assign(specs, blockSpecs(`img.blocks.${i}`, D, im.mlpRatio));
  Object.assign(specs, POOLERS[im.pool].specs(D));
  Object.assign(specs, layerNormSpecs('img.lnf', D), denseSpecs('img.head', D, embedDim, false));
  return specs;
}

/**
 * All image tokens after the last block and the final layer norm: [B·T, D] with
 * T = extra + mixture + patches, in that order.
 */
export function imageTokens(p: Params, im: ImageTowerConfig, images: tf.Tensor4D): tf.Tensor2D {
  const B = images.shape[0];
  const { extra, mixture, patches } = imageTokenLayout(im);
  const D = im.width;
  const x = tf.sub(tf.mul(patchify(images, im.patch), 2), 1) as tf.Tensor2D; // pixels to [-1, 1]
  let h = tf.add(tf.reshape(dense(p, 'img.patch', x), [B, patches, D]), p['img.pos']); // [B, N, D]
  const learned = [extra > 0 ? p['img.extra'] : null, mixture > 0 ? p['img.mixture'] : null]
    .filter((t) => t !== null)
    .map((t) => tf.add(tf.zeros([B, t.shape[0], D]), t)); // [B, n, D] each
  if (learned.length) h = tf.concat([...learned, h], 1); // [B, T, D]
  let z = tf.reshape(h, [B * (extra + mixture + patches), D]) as tf.Tensor2D;
  for (let i = 0; i < im.depth; i++) z = block(p, `img.blocks.${i}`, z, B, im.heads, null);
  return norm(p, 'img.lnf', z);
}

/** Pool the tokens of `imageTokens` into one vector per image: [B, D]. */
export function poolImage(
  p: Params,
  im: ImageTowerConfig,
  tokens: tf.Tensor2D,
  B: number,
): tf.Tensor2D {
  const layout = imageTokenLayout(im);
  const T = layout.extra + layout.mixture + layout.patches;
  const t3 = tf.reshape(tokens, [B, T, im.width]) as tf.Tensor3D;
  return POOLERS[im.pool].pool(p, t3, layout, im.heads);
}

/** The K mixture tokens of `imageTokens`: [B, K, D] (after the final layer norm). */
export function mixtureTokens(im: ImageTowerConfig, tokens: tf.Tensor2D, B: number): tf.Tensor3D {
  const { extra, mixture, patches } = imageTokenLayout(im);
  const t3 = tf.reshape(tokens, [B, extra + mixture + patches, im.width]);
  return tf.slice(t3, [0, extra, 0], [B, mixture, im.width]) as tf.Tensor3D;
}

/** The P patch tokens of `imageTokens`: [B, P, D] (after the final layer norm). */
export function patchTokens(im: ImageTowerConfig, tokens: tf.Tensor2D, B: number): tf.Tensor3D {
  const { extra, mixture, patches } = imageTokenLayout(im);
  const t3 = tf.reshape(tokens, [B, extra + mixture + patches, im.width]);
  return tf.slice(t3, [0, extra + mixture, 0], [B, patches, im.width]) as tf.Tensor3D;
}

/** Image embeddings before normalisation: [B, E]. */
export function encodeImagesRaw(p: Params, im: ImageTowerConfig, images: tf.Tensor4D): tf.Tensor2D {
  const B = images.shape[0];
  return tf.matMul(poolImage(p, im, imageTokens(p, im, images), B), p['img.head.w'] as tf.Tensor2D);
}
