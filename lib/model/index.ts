/**
 * The two towers: a ViT image tower and a causal text transformer projected
 * into a shared E-dimensional space. Functions are pure over a `Params` map
 * (big_vision style). An objective (objectives/) says which outputs it needs;
 * the towers compute those and nothing else.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config';
import { l2normalize } from './ops';
import type { Params } from './params';
import { encodeTextsRaw, endOfTextMask, textFeatures } from './text';
import { encodeImagesRaw, imageTokens, mixtureTokens, patchTokens, poolImage } from './vit';

/** The towers' config and weights (a trained `Model` of objectives/model.ts is one). */
export interface Towers {
  config: ModelConfig;
  params: Params;
  endId: number; // token id of END, for end-of-text pooling
}

/** Which tower outputs an objective reads. */
export interface TowerNeeds {
  image: boolean; // pooled image embedding
  imageTokens?: boolean; // every image token after the final layer norm
  mixtureTokens: boolean; // the K mixture tokens (model.image.mixtureTokens)
  patchTokens?: boolean; // the patch tokens after the final layer norm (Llip's Figure 7 variant)
  textFeature: boolean; // pre-projection text feature g
}

/** Tower outputs for a batch of B images and B captions; absent when not asked for. */
export type TowerOutputs = {
  image?: tf.Tensor2D; // pooled, projected, not normalised: [B, E]
  imageTokens?: tf.Tensor3D; // every token after the final layer norm: [B, T, width]
  mixtureTokens?: tf.Tensor3D; // after the final layer norm, before any projection: [B, K, width]
  patchTokens?: tf.Tensor3D; // after the final layer norm, before any projection: [B, P, width]
  text?: tf.Tensor2D; // end-of-text state, projected, not normalised: [B, E]
  textFeature?: tf.Tensor2D; // end-of-text state before the projection: [B, Dt]
};

/** The image side of TowerOutputs for images [B, 32, 32, 3]. */
export function imageOutputs(t: Towers, images: tf.Tensor4D, needs: TowerNeeds): TowerOutputs {
  const im = t.config.image;
  if (needs.image && !needs.mixtureTokens && !needs.imageTokens && !needs.patchTokens)
    return { image: encodeImagesRaw(t.params, im, images) };
  const B = images.shape[0];
  const tokens = imageTokens(t.params, im, images); // [B·T, width]
  const out: TowerOutputs = {};
  if (needs.image)
    out.image = tf.matMul(
      poolImage(t.params, im, tokens, B),
      t.params['img.head.w'] as tf.Tensor2D,
    ) as tf.Tensor2D;
  if (needs.imageTokens) out.imageTokens = tf.reshape(tokens, [B, -1, im.width]) as tf.Tensor3D;
  // the objective owns their projections (Llip's per-token keys and values)
  if (needs.mixtureTokens) out.mixtureTokens = mixtureTokens(im, tokens, B);
  if (needs.patchTokens) out.patchTokens = patchTokens(im, tokens, B);
  return out;
}

/** The text side of TowerOutputs for token ids [B, L]: the raw embedding, and g if asked. */
export function textOutputs(
  t: Towers,
  tokens: Int32Array,
  B: number,
  needs: Pick<TowerNeeds, 'textFeature'>,
): TowerOutputs {
  const tx = t.config.text;
  const L = tx.contextLength;
  if (tokens.length !== B * L)
    throw new Error(`text tower: expected ${B}×${L} token ids, got ${tokens.length}`);
  const ids = tf.tensor2d(tokens, [B, L], 'int32');
  const eot = endOfTextMask(tokens, B, L, t.endId);
  if (!needs.textFeature) return { text: encodeTextsRaw(t.params, tx, ids, eot) };
  const g = textFeatures(t.params, tx, ids, eot);
  const text = tf.matMul(g, t.params['txt.head.w'] as tf.Tensor2D) as tf.Tensor2D;
  return { text, textFeature: g };
}

/** Unit-norm pooled image embeddings [B, E] from images [B, 32, 32, 3]. */
export function encodeImages(t: Towers, images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => l2normalize(encodeImagesRaw(t.params, t.config.image, images)));
}

/** Unit-norm text embeddings [B, E] from token ids [B, L]. */
export function encodeTexts(t: Towers, tokens: Int32Array, B: number): tf.Tensor2D {
  return tf.tidy(() => l2normalize(textOutputs(t, tokens, B, { textFeature: false }).text!));
}

export * from './config';
export * from './params';
export { causalMask, endOfTextMask, textFeatures } from './text';
export {
  imageTokenLayout,
  imageTokens,
  mixtureTokens,
  patchify,
  patchTokens,
  poolImage,
} from './vit';
