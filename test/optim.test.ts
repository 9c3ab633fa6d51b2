/**
 * AdamW against torch.optim.AdamW (float64, test/reference/make_golden.py):
 * global-norm clipping, decay on matrices only, a changing learning rate, four
 * steps. The backend's fused kernel (lib/backend/kernels.ts), when it has one,
 * must give the same bits as the TF.js-op version it replaces.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ADAMW, ADAMW_MULTI, hasKernel } from '../lib/backend/kernels';
import type { ParamSpecs, Params } from '../lib/model/params';
import {
  adamwStep,
  createAdamState,
  defaultOptim,
  disposeAdamState,
  lrAt,
  type OptimConfig,
} from '../lib/train/optim';
import { assertClose, loadGolden, setup } from './helpers';

interface AdamwGolden {
  config: Pick<OptimConfig, 'beta1' | 'beta2' | 'eps' | 'weightDecay' | 'gradClip'>;
  shapes: Record<string, number[]>;
  decay: Record<string, boolean>;
  init: Record<string, number[]>;
  steps: {
    lr: number;
    grads: Record<string, number[]>;
    gradNorm: number;
    params: Record<string, number[]>;
  }[];
}

/** Runs the golden steps with `fused` on or off; returns params and norms after each step. */
function runGolden(fused: boolean, multi = false) {
  const g = loadGolden().adamw as AdamwGolden;
  const o: OptimConfig = { ...defaultOptim, ...g.config };
  const specs: ParamSpecs = {};
  const params: Params = {};
  for (const [n, shape] of Object.entries(g.shapes)) {
    specs[n] = { shape, init: 'zeros', decay: g.decay[n] };
    params[n] = tf.variable(tf.tensor(g.init[n], shape));
  }
  const state = createAdamState(params);
  const before = tf.memory().numTensors;
  const out = g.steps.map((s) => {
    const grads = Object.fromEntries(
      Object.entries(g.shapes).map(([n, shape]) => [n, tf.tensor(s.grads[n], shape)]),
    );
    const norms = adamwStep(params, specs, grads, state, s.lr, o, fused, multi);
    const [gradNorm, paramNorm, updateNorm] = Array.from(norms.dataSync());
    tf.dispose([norms, ...Object.values(grads)]);
    const values = Object.fromEntries(Object.entries(params).map(([n, p]) => [n, p.dataSync()]));
    return { values, gradNorm, paramNorm, updateNorm };
  });
  assert.equal(tf.memory().numTensors, before, 'adamwStep leaks no tensors');
  disposeAdamState(state);
  tf.dispose(Object.values(params));
  return { golden: g, out };
}

test('AdamW matches torch.optim.AdamW with clipping and decoupled decay', async () => {
  await setup();
  for (const fused of hasKernel(ADAMW) ? [false, true] : [false]) {
    const { golden, out } = runGolden(fused);
    golden.steps.forEach((s, i) => {
      assertClose(out[i].gradNorm, s.gradNorm, `fused=${fused} step ${i} grad norm`, 1e-5, 1e-5);
      for (const n of Object.keys(s.params)) {
        assertClose(out[i].values[n], s.params[n], `fused=${fused} step ${i} ${n}`, 1e-6, 1e-5);
      }
      const norm = Math.hypot(...Object.values(s.params).flat());
      assertClose(out[i].paramNorm, norm, `fused=${fused} step ${i} param norm`, 1e-5, 1e-5);
    });
    // steps 2 and 4 have large gradients: clipping must have acted (norm > 1).
    assert.ok(golden.steps[1].gradNorm > 1 && golden.steps[3].gradNorm > 1);
  }
});

test('the fused AdamW kernel gives the same bits as the TF.js ops', async (t) => {
  await setup();
  if (!hasKernel(ADAMW)) return t.skip(`no ${ADAMW} kernel on backend ${tf.getBackend()}`);
  const composite = runGolden(false).out;
  const fused = runGolden(true).out;
  fused.forEach((f, i) => {
    for (const n of Object.keys(f.values)) {
      assert.deepEqual(
        Array.from(f.values[n]),
        Array.from(composite[i].values[n]),
        `step ${i} ${n}`,
      );
    }
    assertClose(f.updateNorm, composite[i].updateNorm, `step ${i} update norm`, 1e-7, 1e-5);
  });
});

/**
 * Five steps of AdamW on 40 parameters of odd sizes (one without a gradient,
 * some without decay), large gradients so clipping acts; returns every
 * parameter, moment and norm after each step.
 */
function runMany(multi: boolean, gradClip: number) {
  const o: OptimConfig = { ...defaultOptim, weightDecay: 0.1, gradClip };
  const specs: ParamSpecs = {};
  const params: Params = {};
  for (let i = 0; i < 40; i++) {
    const shape = i % 3 === 0 ? [1 + ((i * 37) % 300)] : [1 + (i % 17), 1 + ((i * 13) % 70)];
    specs[`w${i}`] = { shape, init: 'zeros', decay: i % 3 !== 0 };
    params[`w${i}`] = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', i + 1));
  }
  const state = createAdamState(params);
  const before = tf.memory().numTensors;
  const out = [0, 1, 2, 3, 4].map((step) => {
    const grads = Object.fromEntries(
      Object.entries(specs)
        .filter(([n]) => n !== 'w7')
        .map(([n, s]) => [
          n,
          tf.randomNormal(s.shape, 0, 3, 'float32', 1000 * (step + 1) + Number(n.slice(1))),
        ]),
    );
    const norms = adamwStep(params, specs, grads, state, 1e-2 * (step + 1), o, true, multi);
    const read = (r: Record<string, tf.Tensor>) =>
      Object.values(r).map((x) => Array.from(x.dataSync()));
    const res = { p: read(params), m: read(state.m), v: read(state.v), norms: read({ norms }) };
    tf.dispose([norms, ...Object.values(grads)]);
    return res;
  });
  assert.equal(tf.memory().numTensors, before, 'adamwStep leaks no tensors');
  disposeAdamState(state);
  tf.dispose(Object.values(params));
  return out;
}

test('one multi-tensor AdamW call gives the bits of the per-parameter path', async (t) => {
  await setup();
  if (!hasKernel(ADAMW_MULTI)) return t.skip(`no ${ADAMW_MULTI} kernel on ${tf.getBackend()}`);
  for (const clip of [1, 0, 1e6]) {
    const each = runMany(false, clip);
    const one = runMany(true, clip);
    assert.ok(clip !== 1 || each[0].norms[0][0] > 1, 'clipping acts');
    for (const [i, step] of one.entries())
      assert.deepEqual(step, each[i], `clip ${clip}, step ${i}`);
  }
  const golden = runGolden(true).out;
  const multi = runGolden(true, true).out;
  for (const [i, f] of multi.entries()) assert.deepEqual(f, golden[i], `golden step ${i}`);
});

test('lrAt: linear warmup, then cosine down to lr · minLrRatio', () => {
  const o = { ...defaultOptim, lr: 1, warmupSteps: 10, minLrRatio: 0.1 };
  assert.equal(lrAt(0, 110, o), 0.1);
  assert.equal(lrAt(9, 110, o), 1);
  assert.equal(lrAt(10, 110, o), 1);
  assertClose(lrAt(60, 110, o), 0.55, 'half-way', 1e-12, 0);
  assertClose(lrAt(110, 110, o), 0.1, 'end', 1e-12, 0);
  for (let s = 11; s < 110; s++)
    assert.ok(lrAt(s, 110, o) < lrAt(s - 1, 110, o), `decreasing at ${s}`);
});
