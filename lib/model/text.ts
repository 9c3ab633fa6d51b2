/**
 * The text tower: one-hot token embedding (wasm has no gather gradient), learned
 * positions, causal pre-LN blocks, and end-of-text pooling as in CLIP: the
 * representation of a caption is the final state at its END token. The causal
 * mask means padding after END never influences it.
 */
import * as tf from '@tensorflow/tfjs';
import type { TextTowerConfig } from './config';
import { block, blockSpecs, norm } from './layers';
import { embed, sum } from './ops';
import { denseSpecs, layerNormSpecs, type ParamSpecs, type Params } from './params';

export function textTowerSpecs(tx: TextTowerConfig, embedDim: number): ParamSpecs {
  const D = tx.width;
  const specs: ParamSpecs = {
    'txt.tok': { shape: [tx.vocabSize, D], init: 'normal', std: 0.02, decay: false },
    'txt.pos': { shape: [tx.contextLength, D], init: 'normal', std: 0.01, decay: false },
  };
  for (let i = 0; i < tx.depth; i++)
    Object.assign(specs, blockSpecs(`txt.blocks.${i}`, D, tx.mlpRatio));
  return {
    ...specs,
    ...layerNormSpecs('txt.lnf', D),
    ...denseSpecs('txt.head', D, embedDim, false),
  };
}

/**
 * Additive causal mask [L, L]: 0 on and below the diagonal, −1e9 above. Built in
 * JS (no kernel calls); the zeros are −0, the bits (1 − 1)·(−1e9) gave when it
 * was built with tensor ops (test/step-overhead.test.ts checks the two agree bit for bit).
 */
export function causalMask(L: number): tf.Tensor2D {
  const m = new Float32Array(L * L);
  for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) m[i * L + j] = j > i ? -1e9 : -0;
  return tf.tensor2d(m, [L, L]);
}

/**
 * One-hot [B, L] marking each row's END token (the first END; the last position
 * when a row has none, i.e. was truncated without one).
 */
export function endOfTextMask(
  tokens: Int32Array,
  B: number,
  L: number,
  endId: number,
): tf.Tensor2D {
  const m = new Float32Array(B * L);
  for (let i = 0; i < B; i++) {
    let pos = L - 1;
    for (let j = 0; j < L; j++)
      if (tokens[i * L + j] === endId) {
        pos = j;
        break;
      }
    m[i * L + pos] = 1;
  }
  return tf.tensor2d(m, [B, L]);
}

/**
 * The pre-projection text feature g: the final state at each caption's END token,
 * after the final layer norm, [B, Dt]. `tokens` is [B, L] int32.
 */
export function textFeatures(
  p: Params,
  tx: TextTowerConfig,
  tokens: tf.Tensor2D,
  eot: tf.Tensor2D,
): tf.Tensor2D {
  const [B, L] = tokens.shape;
  const D = tx.width;
  const x = embed(tf.reshape(tokens, [B * L]) as tf.Tensor1D, p['txt.tok'] as tf.Tensor2D); // [B·L, D]
  let z = tf.reshape(tf.add(tf.reshape(x, [B, L, D]), p['txt.pos']), [B * L, D]) as tf.Tensor2D;
  const mask = causalMask(L);
  for (let i = 0; i < tx.depth; i++) z = block(p, `txt.blocks.${i}`, z, B, tx.heads, mask);
  const h = tf.reshape(norm(p, 'txt.lnf', z), [B, L, D]);
  return sum<tf.Tensor2D>(tf.mul(h, tf.expandDims(eot, -1)), 1); // [B, D]
}

/** Text embeddings before normalisation: g·W_T, [B, E]. */
export function encodeTextsRaw(
  p: Params,
  tx: TextTowerConfig,
  tokens: tf.Tensor2D,
  eot: tf.Tensor2D,
): tf.Tensor2D {
  return tf.matMul(textFeatures(p, tx, tokens, eot), p['txt.head.w'] as tf.Tensor2D);
}
