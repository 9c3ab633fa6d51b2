/**
 * AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, a warmup + cosine
 * learning-rate schedule, and global gradient-norm clipping. β2 = 0.95 by default,
 * as SigLIP and Llip use to stabilise contrastive pretraining.
 */
import * as tf from '@tensorflow/tfjs';
import { type InferOutput, strictObject } from 'valibot';
import {
  ADAMW,
  ADAMW_MULTI,
  type AdamWAttrs,
  type AdamWMultiAttrs,
  hasKernel,
} from '../backend/kernels';
import type { ParamSpecs, Params } from '../model/params';
import { int, num } from '../schema';

export const OptimSchema = strictObject({
  lr: num({ above: 0 }), // peak learning rate
  warmupSteps: int({ min: 0 }), // linear warmup from 0 to lr
  minLrRatio: num({ min: 0, max: 1 }), // cosine decays to lr · minLrRatio at the last step
  weightDecay: num({ min: 0 }), // decoupled; applied only to params whose spec says decay
  beta1: num({ min: 0, below: 1 }),
  beta2: num({ min: 0, below: 1 }),
  eps: num({ above: 0 }),
  gradClip: num({ min: 0 }), // max global L2 norm of the gradient; 0 disables
});
export type OptimConfig = InferOutput<typeof OptimSchema>;

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

/** One parameter and its AdamW state: what an update reads and assigns. */
interface Slot {
  p: tf.Variable;
  grad: tf.Tensor;
  m: tf.Variable;
  v: tf.Variable;
}

/**
 * One AdamW update, in place. Returns scalars [gradNorm, paramNorm, updateNorm]
 * (before clipping for gradNorm) as one tensor so the caller syncs once.
 * Runs the backend's fused kernel (lib/backend/kernels.ts) when it has one
 * (`fused` overrides, for tests), else the same maths as TF.js ops; with
 * `multi` (the backend's ADAMW_MULTI), every parameter and the norms in one
 * call, same bits.
 */
export function adamwStep(
  params: Params,
  specs: ParamSpecs,
  grads: Record<string, tf.Tensor>,
  state: AdamState,
  lr: number,
  o: OptimConfig,
  fused = hasKernel(ADAMW),
  multi = fused && hasKernel(ADAMW_MULTI),
): tf.Tensor1D {
  state.t += 1;
  const bc1 = 1 - o.beta1 ** state.t;
  const bc2 = 1 - o.beta2 ** state.t;
  const { beta1, beta2, eps } = o;
  const base = { lr, beta1, beta2, eps, bc1, bc2 };
  const names = Object.keys(params).filter((n) => grads[n]);
  const decay = (n: string) => (specs[n]?.decay && o.weightDecay > 0 ? o.weightDecay : 0);
  if (multi && names.length > 0) return multiUpdate(params, grads, state, names, decay, base, o);
  return tf.tidy(() => {
    const gNorm = globalNorm(names.map((n) => grads[n]));
    const scale =
      o.gradClip > 0 ? tf.minimum(1, tf.div(o.gradClip, tf.add(gNorm, 1e-6))) : tf.scalar(1);
    const update = fused ? fusedUpdate : compositeUpdate;
    // [Σ step², Σ param'²] of each parameter
    const sq = names.map((n) => {
      const slot = { p: params[n], grad: grads[n], m: state.m[n], v: state.v[n] };
      return update(slot, scale, { ...base, weightDecay: decay(n) });
    });
    const rest = Object.keys(params).filter((n) => !grads[n]);
    for (const n of rest)
      sq.push(tf.stack([tf.scalar(0), tf.sum(tf.square(params[n]))]) as tf.Tensor1D);
    const [stepSq, paramSq] = tf.unstack(tf.sum(tf.stack(sq), 0));
    return tf.stack([gNorm, tf.sqrt(paramSq), tf.sqrt(stepSq)]) as tf.Tensor1D;
  });
}

/** The whole update (norm, clip, every parameter) in one call of ADAMW_MULTI. */
function multiUpdate(
  params: Params,
  grads: Record<string, tf.Tensor>,
  state: AdamState,
  names: string[],
  decay: (n: string) => number,
  base: Omit<AdamWAttrs, 'weightDecay'>,
  o: OptimConfig,
): tf.Tensor1D {
  const rest = Object.keys(params).filter((n) => !grads[n]);
  const inputs: tf.NamedTensorMap = {};
  names.forEach((n, i) => {
    Object.assign(inputs, { [`p${i}`]: params[n], [`g${i}`]: grads[n] });
    Object.assign(inputs, { [`m${i}`]: state.m[n], [`v${i}`]: state.v[n] });
  });
  rest.forEach((n, j) => {
    inputs[`r${j}`] = params[n];
  });
  const attrs: AdamWMultiAttrs = {
    ...base,
    weightDecay: names.map(decay),
    gradClip: o.gradClip,
    rest: rest.length,
  };
  const outs = tf.engine().runKernel(ADAMW_MULTI, inputs, attrs as unknown as tf.NamedAttrMap);
  const updated = outs as tf.Tensor[]; // p', m', v' of each parameter, then the norms
  const norms = updated.pop() as tf.Tensor1D;
  names.forEach((n, i) => {
    params[n].assign(updated[3 * i]);
    state.m[n].assign(updated[3 * i + 1]);
    state.v[n].assign(updated[3 * i + 2]);
  });
  tf.dispose(updated);
  return norms;
}

/**
 * AdamW as TF.js ops: m' = β1 m + (1-β1) g, v' = β2 v + (1-β2) g²,
 * p' = p - lr·(m'/bc1 / (sqrt(v'/bc2) + eps) + wd·p), with g = grad · scale.
 */
function compositeUpdate({ p, grad, m, v }: Slot, scale: tf.Tensor, a: AdamWAttrs): tf.Tensor1D {
  const g = tf.mul(grad, scale);
  m.assign(tf.add(tf.mul(m, a.beta1), tf.mul(g, 1 - a.beta1)));
  v.assign(tf.add(tf.mul(v, a.beta2), tf.mul(tf.square(g), 1 - a.beta2)));
  let u = tf.div(tf.div(m, a.bc1), tf.add(tf.sqrt(tf.div(v, a.bc2)), a.eps));
  if (a.weightDecay > 0) u = tf.add(u, tf.mul(p, a.weightDecay));
  const step = tf.mul(u, a.lr);
  p.assign(tf.sub(p, step));
  return tf.stack([tf.sum(tf.square(step)), tf.sum(tf.square(p))]) as tf.Tensor1D;
}

/** The same update in one call of the backend's fused kernel. */
function fusedUpdate({ p, grad, m, v }: Slot, scale: tf.Tensor, a: AdamWAttrs): tf.Tensor1D {
  const inputs = { param: p, grad, m, v, scale };
  const attrs = a as unknown as tf.NamedAttrMap;
  const [p2, m2, v2, stats] = tf.engine().runKernel(ADAMW, inputs, attrs) as tf.Tensor[];
  p.assign(p2);
  m.assign(m2);
  v.assign(v2);
  return stats as tf.Tensor1D;
}
