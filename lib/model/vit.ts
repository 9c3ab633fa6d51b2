/**
 * The image tower: a small ViT. Patchify by reshape/transpose (the wasm backend has
 * no Conv2DBackpropFilter, and a patch embedding is just a matmul), learned
 * positions, optional cls/register tokens, pre-LN blocks, then pooling:
 *   cls  — the first token; mean — mean of the patch tokens;
 *   map  — multihead attention pooling with a learned probe (big_vision's MAP head).
 */
import * as tf from '@tensorflow/tfjs';
import { type ImageTowerConfig, imageTokenLayout } from './config';
import { block, blockSpecs, dense, norm } from './layers';
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

export function imageTowerSpecs(im: ImageTowerConfig, embedDim: number): ParamSpecs {
  const { extra, patches } = imageTokenLayout(im);
  const D = im.width;
  const specs: ParamSpecs = {
    ...denseSpecs('img.patch', im.patch * im.patch * 3, D),
    'img.pos': { shape: [patches, D], init: 'normal', std: 0.02, decay: false },
  };
  if (extra > 0)
    specs['img.extra'] = { shape: [extra, D], init: 'normal', std: 0.02, decay: false };
  for (let i = 0; i < im.depth; i++)
    Object.assign(specs, blockSpecs(`img.blocks.${i}`, D, im.mlpRatio));
  if (im.pool === 'map') {
    specs['img.map.probe'] = { shape: [1, D], init: 'normal', std: 0.02, decay: false };
    Object.assign(specs, denseSpecs('img.map.q', D, D), denseSpecs('img.map.kv', D, 2 * D));
    Object.assign(specs, denseSpecs('img.map.proj', D, D));
  }
  Object.assign(specs, layerNormSpecs('img.lnf', D), denseSpecs('img.head', D, embedDim, false));
  return specs;
}

/**
 * All image tokens after the last block and the final layer norm: [B·T, D] with
 * T = extra + patches (extra tokens first). Llip's mixture tokens read these.
 */
export function imageTokens(p: Params, im: ImageTowerConfig, images: tf.Tensor4D): tf.Tensor2D {
  const B = images.shape[0];
  const { extra, patches } = imageTokenLayout(im);
  const D = im.width;
  const x = tf.sub(tf.mul(patchify(images, im.patch), 2), 1) as tf.Tensor2D; // pixels to [-1, 1]
  let h = tf.add(tf.reshape(dense(p, 'img.patch', x), [B, patches, D]), p['img.pos']); // [B, N, D]
  if (extra > 0) h = tf.concat([tf.add(tf.zeros([B, extra, D]), p['img.extra']), h], 1); // [B, T, D]
  let z = tf.reshape(h, [B * (extra + patches), D]) as tf.Tensor2D;
  for (let i = 0; i < im.depth; i++) z = block(p, `img.blocks.${i}`, z, B, im.heads, null);
  return norm(p, 'img.lnf', z);
}

/** Multihead attention pooling of [B, T, D] tokens into [B, D] with a learned probe. */
function mapPool(p: Params, tokens: tf.Tensor3D, heads: number): tf.Tensor2D {
  const [B, T, D] = tokens.shape;
  const dh = D / heads;
  const q = tf.reshape(dense(p, 'img.map.q', p['img.map.probe'] as tf.Tensor2D), [1, heads, 1, dh]);
  const [k, v] = tf.split(
    dense(p, 'img.map.kv', tf.reshape(tokens, [B * T, D]) as tf.Tensor2D),
    2,
    1,
  ); // [B·T, D] each
  const toHeads = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [B, T, heads, dh]), [0, 2, 1, 3]); // [B, H, T, dh]
  const scores = tf.mul(tf.sum(tf.mul(toHeads(k), q), -1), 1 / Math.sqrt(dh)); // [B, H, T]
  const att = tf.expandDims(tf.softmax(scores), -1); // [B, H, T, 1]
  const pooled = tf.reshape(tf.sum(tf.mul(att, toHeads(v)), 2), [B, D]) as tf.Tensor2D; // [B, D]
  return dense(p, 'img.map.proj', pooled);
}

/** Pool the tokens of `imageTokens` into one vector per image: [B, D]. */
export function poolImage(
  p: Params,
  im: ImageTowerConfig,
  tokens: tf.Tensor2D,
  B: number,
): tf.Tensor2D {
  const { extra, patches } = imageTokenLayout(im);
  const t3 = tf.reshape(tokens, [B, extra + patches, im.width]) as tf.Tensor3D;
  if (im.pool === 'cls')
    return tf.reshape(tf.slice(t3, [0, 0, 0], [B, 1, im.width]), [B, im.width]);
  const patchTokens = extra > 0 ? tf.slice(t3, [0, extra, 0], [B, patches, im.width]) : t3;
  if (im.pool === 'mean') return tf.mean(patchTokens, 1) as tf.Tensor2D;
  return mapPool(p, patchTokens, im.heads);
}

/** Image embeddings before normalisation: [B, E]. */
export function encodeImagesRaw(p: Params, im: ImageTowerConfig, images: tf.Tensor4D): tf.Tensor2D {
  const B = images.shape[0];
  return tf.matMul(poolImage(p, im, imageTokens(p, im, images), B), p['img.head.w'] as tf.Tensor2D);
}
