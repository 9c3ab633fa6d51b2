/**
 * Parameters are a flat, ordered map name → tf.Variable (like a PyTorch state dict).
 * Init is drawn from the lab's seeded Rng on the JS side so a run is reproducible
 * on every backend, and the same names let the PyTorch reference load our weights.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../rng';

export type Params = Record<string, tf.Variable>;

/** How a parameter is initialised and whether AdamW decays it. */
export interface ParamSpec {
  shape: number[];
  init: 'zeros' | 'ones' | 'normal' | 'const';
  std?: number; // for 'normal'
  value?: number; // for 'const'
  decay: boolean; // weight decay applies to matrices only, never to biases/norms/temperatures
}

export type ParamSpecs = Record<string, ParamSpec>;

/** Variables for `specs`, drawn from one seeded stream; `trainable` false for state (never differentiated). */
export function initParams(specs: ParamSpecs, seed: number, trainable = true): Params {
  const rng = new Rng(seed);
  const params: Params = {};
  for (const [name, s] of Object.entries(specs)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    if (s.init === 'ones') v.fill(1);
    else if (s.init === 'const') v.fill(s.value ?? 0);
    else if (s.init === 'normal') for (let i = 0; i < n; i++) v[i] = rng.normal() * (s.std ?? 0.02);
    params[name] = tf.tidy(() => tf.variable(tf.tensor(v, s.shape), trainable));
  }
  return params;
}

/** A dense layer [in → out]; std 1/√in keeps activations at unit scale. */
export function denseSpecs(prefix: string, nIn: number, nOut: number, bias = true): ParamSpecs {
  const specs: ParamSpecs = {
    [`${prefix}.w`]: { shape: [nIn, nOut], init: 'normal', std: 1 / Math.sqrt(nIn), decay: true },
  };
  if (bias) specs[`${prefix}.b`] = { shape: [nOut], init: 'zeros', decay: false };
  return specs;
}

export function layerNormSpecs(prefix: string, d: number): ParamSpecs {
  return {
    [`${prefix}.g`]: { shape: [d], init: 'ones', decay: false },
    [`${prefix}.b`]: { shape: [d], init: 'zeros', decay: false },
  };
}

export function countParams(params: Params): number {
  return Object.values(params).reduce((a, v) => a + v.size, 0);
}

export function disposeParams(params: Params): void {
  for (const v of Object.values(params)) v.dispose();
}

/** Copies of the values, in name order (for checkpoints, hashing and the reference). */
export async function exportParams(
  params: Params,
): Promise<Record<string, { shape: number[]; data: number[] }>> {
  const out: Record<string, { shape: number[]; data: number[] }> = {};
  for (const [name, v] of Object.entries(params))
    out[name] = { shape: v.shape, data: Array.from(await v.data()) };
  return out;
}

/** Overwrite parameter values by name; throws on a missing name or a shape mismatch. */
export function loadParams(
  params: Params,
  values: Record<string, { shape: number[]; data: ArrayLike<number> }>,
): void {
  for (const [name, v] of Object.entries(params)) {
    const src = values[name];
    if (!src) throw new Error(`loadParams: missing parameter '${name}'`);
    if (src.shape.join() !== v.shape.join())
      throw new Error(`loadParams: '${name}' has shape [${src.shape}], expected [${v.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from(src.data), v.shape)));
  }
}
