/**
 * Looking inside a trained Llip model (notebook 03): its mixing weights Φ for
 * chosen images and captions, and what the pairwise mixing costs as K grows.
 */
import * as tf from '@tensorflow/tfjs';
import { IMAGE_SIZE } from '../data/types';
import {
  type LlipConfig,
  type LlipParams,
  llipLoss,
  llipParams,
  llipTokens,
  llipWeights,
} from '../objectives/llip';
import { type Model, towerOutputs } from '../objectives/model';

function llipConfigOf(model: Model): LlipConfig {
  if (model.objective.name !== 'llip')
    throw new Error(`mixing weights need a Llip model, got objective '${model.objective.name}'`);
  return model.objective;
}

/**
 * Φ of eq. 1 for N images [N·32·32·3] against Bt captions (token rows [Bt·L]):
 * [M, Bt, N, T] (heads, captions, images, tokens); the text-free rungs give
 * [M, 1, N, T] whatever the captions.
 */
export function mixingWeights(model: Model, images: Float32Array, tokens: Int32Array): tf.Tensor4D {
  const cfg = llipConfigOf(model);
  const N = images.length / (IMAGE_SIZE * IMAGE_SIZE * 3);
  const Bt = tokens.length / model.config.text.contextLength;
  return tf.tidy(() => {
    const x = tf.tensor4d(images, [N, IMAGE_SIZE, IMAGE_SIZE, 3]);
    const img = towerOutputs(model, x, null, N);
    const txt = towerOutputs(model, null, tokens, Bt);
    return llipWeights(
      llipTokens(img, cfg),
      txt.textFeature ?? null,
      llipParams(model.params),
      cfg,
    );
  });
}

export type MixingCost = {
  K: number;
  ms: number; // median forward + backward of the loss alone
};

/**
 * Median ms over `reps` of f's value and gradients w.r.t. every input (synced by
 * reading one number of each), after `warmup` untimed calls. Shared with the bench.
 */
export function timeGrads(
  f: (...x: tf.Tensor[]) => tf.Scalar,
  xs: tf.Tensor[],
  reps: number,
  warmup: number,
): number {
  const ms: number[] = [];
  for (let r = -warmup; r < reps; r++) {
    const t0 = performance.now();
    tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads(f)(xs);
      tf.concat([value.reshape([1]), ...grads.map((g) => g.reshape([-1]).slice(0, 1))]).dataSync();
    });
    if (r >= 0) ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[ms.length >> 1];
}

/**
 * The objective alone, forward + backward w.r.t. every input, at batch B, token
 * width w, embedding E, M heads, for each K (text mixing): how the pairwise
 * mixing's cost grows with the number of mixture tokens. Median of `reps`.
 */
export function mixingCost(
  Ks: number[],
  o: { batch: number; width: number; embedDim: number; heads: number; reps: number },
): MixingCost[] {
  const { batch: B, width: w, embedDim: E } = o;
  const cfg = { heads: o.heads, tau: 5, mixing: 'text' as const };
  return Ks.map((K) => {
    const xs = [
      tf.randomNormal([B, K, w], 0, 1, 'float32', 1),
      tf.randomNormal([B, w], 0, 1, 'float32', 2),
      tf.randomNormal([B, E], 0, 1, 'float32', 3),
      tf.randomNormal([w, E], 0, 1 / Math.sqrt(w), 'float32', 4),
      tf.randomNormal([K, w, E], 0, 1 / Math.sqrt(w), 'float32', 5),
      tf.randomNormal([K, w, E], 0, 1 / Math.sqrt(w), 'float32', 6),
      tf.randomNormal([E, E], 0, 1 / Math.sqrt(E), 'float32', 7),
      tf.scalar(Math.log(10)),
      tf.scalar(-10),
    ];
    const f = (...x: tf.Tensor[]) => {
      const [h, g, zt, wq, wk, wv, wo, logScale, bias] = x;
      const p = { wq, wk, wv, wo, logScale, bias } as LlipParams;
      return llipLoss(h as tf.Tensor3D, g as tf.Tensor2D, zt as tf.Tensor2D, p, cfg);
    };
    const ms = timeGrads(f, xs, o.reps, 1);
    tf.dispose(xs);
    return { K, ms };
  });
}
