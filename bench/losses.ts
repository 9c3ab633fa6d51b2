/**
 * The contrastive objectives on their own: forward + backward of SigLIP, CLIP,
 * LIxP and Llip at batch 256 (lab side), w.r.t. the embeddings and every loss
 * parameter, from the same kind of inputs the training step feeds them.
 * bench/torch_bench.py times the same four (test/reference/towers.py) in PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import { timeGrads } from '../lib/eval/mixing';
import { l2normalize } from '../lib/model/ops';
import { clipLoss } from '../lib/objectives/clip';
import { OBJECTIVES } from '../lib/objectives/index';
import { type LixpParams, lixpLoss } from '../lib/objectives/lixp';
import { type LlipParams, llipLoss } from '../lib/objectives/llip';
import { siglipLoss } from '../lib/objectives/siglip';

export interface LossShape {
  batch: number;
  dim: number; // embedding width D
  mixtureTokens: number; // Llip's K
  heads: number; // Llip's M
  tau: number; // Llip's temperature
}

/** The `lab` preset's embedding width; K, M and τ as in the Llip paper. */
export const LOSS_SHAPE: LossShape = { batch: 256, dim: 64, mixtureTokens: 64, heads: 8, tau: 5 };

export const LOSS_NAMES = ['siglip', 'clip', 'lixp', 'llip'] as const;
export type LossTimes = Record<(typeof LOSS_NAMES)[number], number>;

/** A loss as a function of its differentiable inputs, with those inputs. */
function lossCases(
  s: LossShape,
): Record<keyof LossTimes, [(...x: tf.Tensor[]) => tf.Scalar, tf.Tensor[]]> {
  const { batch: B, dim: D, mixtureTokens: K } = s;
  const raw = () => tf.randomNormal([B, D], 0, 1, 'float32', 1) as tf.Tensor2D;
  const unit = () => l2normalize(tf.randomNormal([B, D], 0, 1, 'float32', 2) as tf.Tensor2D);
  const w = (seed: number) => tf.randomNormal([D, D], 0, 1 / Math.sqrt(D), 'float32', seed);
  const perToken = (seed: number) =>
    tf.randomNormal([K, D, D], 0, 1 / Math.sqrt(D), 'float32', seed);
  // initial values of each objective's scalars, from its default config
  const { siglip, clip, lixp } = OBJECTIVES;
  const init = (specs: Record<string, { value?: number }>) =>
    Object.fromEntries(Object.entries(specs).map(([n, sp]) => [n, tf.scalar(sp.value ?? 0)]));
  const sig = init(siglip.params(siglip.defaults, {} as never));
  const lixpInit = init(lixp.params(lixp.defaults, {} as never));
  const lixpNames = Object.keys(lixpInit);
  const lixpScalars = Object.values(lixpInit);
  return {
    siglip: [
      (i, t, a, b) =>
        siglipLoss(l2normalize(i as tf.Tensor2D), t as tf.Tensor2D, a as tf.Scalar, b as tf.Scalar),
      [raw(), unit(), sig.logScale, sig.bias],
    ],
    clip: [
      (i, t, a) => clipLoss(l2normalize(i as tf.Tensor2D), t as tf.Tensor2D, a as tf.Scalar),
      [raw(), unit(), tf.scalar(Math.log(clip.defaults.t))],
    ],
    lixp: [
      (i, t, ...p) => {
        const params = Object.fromEntries(
          lixpNames.map((n, k) => [n, p[k]]),
        ) as unknown as LixpParams;
        return lixpLoss(i as tf.Tensor2D, t as tf.Tensor2D, params, lixp.defaults.alpha);
      },
      [raw(), unit(), ...lixpScalars],
    ],
    llip: [
      (h, g, zt, wq, wk, wv, wo, a, b) => {
        const p = { wq, wk, wv, wo, logScale: a, bias: b } as LlipParams;
        const cfg = { heads: s.heads, tau: s.tau };
        return llipLoss(h as tf.Tensor3D, g as tf.Tensor2D, zt as tf.Tensor2D, p, cfg);
      },
      [
        tf.randomNormal([B, K, D], 0, 1, 'float32', 3),
        raw(),
        raw(),
        w(4),
        perToken(5),
        perToken(6),
        w(7),
        sig.logScale.clone(),
        sig.bias.clone(),
      ],
    ],
  };
}

/** Median ms of forward + backward (gradients of every input, synced) of each loss. */
export function timeLossesLab(s: LossShape, reps: number): LossTimes {
  const cases = lossCases(s);
  const out = {} as LossTimes;
  for (const name of LOSS_NAMES) {
    const [f, xs] = cases[name];
    out[name] = timeGrads(f, xs, reps, 2);
    tf.dispose(xs);
  }
  return out;
}
