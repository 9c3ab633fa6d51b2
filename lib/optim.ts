/**
 * AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, a warmup + cosine
 * learning-rate schedule, and global gradient-norm clipping. β2 = 0.95 by default,
 * as SigLIP and Llip use to stabilise contrastive pretraining.
 */
import * as tf from '@tensorflow/tfjs';
import type { ParamSpecs, Params } from './model/params';

export interface OptimConfig {
  lr: number; // peak learning rate
  warmupSteps: number; // linear warmup from 0 to lr
  minLrRatio: number; // cosine decays to lr · minLrRatio at the last step
  weightDecay: number; // decoupled; applied only to params whose spec says decay
  beta1: number;
  beta2: number;
  eps: number;
  gradClip: number; // max global L2 norm of the gradient; 0 disables
}

export const defaultOptim: OptimConfig = {
  lr: 1e-3,
  warmupSteps: 100,
  minLrRatio: 0.05,
  weightDecay: 1e-4,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1.0,
};

/** Learning rate at `step` (0-based) of `total` steps. */
export function lrAt(step: number, total: number, o: OptimConfig): number {
  // 1. linear warmup
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  // 2. cosine from lr down to lr · minLrRatio
  const span = Math.max(1, total - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  const cos = 0.5 * (1 + Math.cos(Math.PI * progress));
  return o.lr * (o.minLrRatio + (1 - o.minLrRatio) * cos);
}

export interface AdamState {
  t: number; // number of updates taken
  m: Record<string, tf.Variable>;
  v: Record<string, tf.Variable>;
}

export function createAdamState(params: Params): AdamState {
  const m: Record<string, tf.Variable> = {};
  const v: Record<string, tf.Variable> = {};
  for (const [name, p] of Object.entries(params)) {
    m[name] = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
    v[name] = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
  }
  return { t: 0, m, v };
}

export function disposeAdamState(s: AdamState): void {
  for (const x of [...Object.values(s.m), ...Object.values(s.v)]) x.dispose();
}

/** Global L2 norm of a set of tensors, as a scalar tensor. */
export function globalNorm(ts: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => tf.sqrt(tf.addN(ts.map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/**
 * One AdamW update, in place. Returns scalars [gradNorm, paramNorm, updateNorm]
 * (before clipping for gradNorm) as one tensor so the caller syncs once.
 */
export function adamwStep(
  params: Params,
  specs: ParamSpecs,
  grads: Record<string, tf.Tensor>,
  state: AdamState,
  lr: number,
  o: OptimConfig,
): tf.Tensor1D {
  state.t += 1;
  const bc1 = 1 - o.beta1 ** state.t;
  const bc2 = 1 - o.beta2 ** state.t;
  return tf.tidy(() => {
    const names = Object.keys(params).filter((n) => grads[n]);
    const gNorm = globalNorm(names.map((n) => grads[n]));
    const scale =
      o.gradClip > 0 ? tf.minimum(1, tf.div(o.gradClip, tf.add(gNorm, 1e-6))) : tf.scalar(1);
    const updates: tf.Tensor[] = [];
    for (const n of names) {
      const p = params[n];
      const g = tf.mul(grads[n], scale);
      state.m[n].assign(tf.add(tf.mul(state.m[n], o.beta1), tf.mul(g, 1 - o.beta1)));
      state.v[n].assign(tf.add(tf.mul(state.v[n], o.beta2), tf.mul(tf.square(g), 1 - o.beta2)));
      let u = tf.div(tf.div(state.m[n], bc1), tf.add(tf.sqrt(tf.div(state.v[n], bc2)), o.eps));
      if (specs[n]?.decay && o.weightDecay > 0) u = tf.add(u, tf.mul(p, o.weightDecay));
      const step = tf.mul(u, lr);
      updates.push(step);
      p.assign(tf.sub(p, step));
    }
    return tf.stack([gNorm, globalNorm(Object.values(params)), globalNorm(updates)]) as tf.Tensor1D;
  });
}
