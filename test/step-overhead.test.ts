/**
 * The kernel-call savings of a training step (issue 17) against the definitions
 * they replace, bit for bit: the causal mask and SigLIP's labels built in JS, the
 * divergence check as a JS scan, custom gradients that read a parameter (a
 * variable) instead of saving a copy of it, and a sum whose gradient tiles dy
 * instead of multiplying it by a ones tensor.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LAB_DENSE } from '../lib/backend/kernels';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';
import { dense } from '../lib/model/layers';
import { layerNorm, sum } from '../lib/model/ops';
import type { Params } from '../lib/model/params';
import { causalMask } from '../lib/model/text';
import { pairLabels } from '../lib/objectives/siglip';
import { allFinite } from '../lib/train/step';
import { setup } from './helpers';

before(setup);

/** Throws at the first index where a and e differ in any bit (−0 and 0 differ). */
function assertSameBits(a: tf.Tensor, e: tf.Tensor, what: string): void {
  assert.deepEqual(a.shape, e.shape, `${what}: shape`);
  const [ua, ue] = [new Uint32Array(a.dataSync().buffer), new Uint32Array(e.dataSync().buffer)];
  for (let i = 0; i < ua.length; i++)
    if (ua[i] !== ue[i])
      assert.fail(`${what}[${i}]: got ${a.dataSync()[i]}, expected ${e.dataSync()[i]}`);
}

test('causalMask equals the band-part definition it replaces, bit for bit', () => {
  for (const L of [1, 2, 5, 16]) {
    tf.tidy(() => {
      const ref = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([L, L]), -1, 0)), -1e9);
      assertSameBits(causalMask(L), ref, `causalMask(${L})`);
    });
  }
});

test("pairLabels equals SigLIP's eye·2 − 1, bit for bit", () => {
  for (const B of [1, 3, 32]) {
    tf.tidy(() => assertSameBits(pairLabels(B), tf.sub(tf.mul(tf.eye(B), 2), 1), `labels(${B})`));
  }
});

test('allFinite agrees with the sum(x·0) test it replaces', () => {
  const cases = [
    [0, -0, 1, -2.5, 3e38, -3e38, 1e-45],
    [1, Number.NaN],
    [Number.POSITIVE_INFINITY, 0],
    [0, Number.NEGATIVE_INFINITY],
  ];
  for (const c of cases) {
    const x = new Float32Array(c);
    const old = tf.tidy(() => tf.sum(tf.mul(tf.tensor1d(x), 0)).dataSync()[0] === 0);
    assert.equal(allFinite(x), old, `[${c}]`);
  }
});

let seed = 11;
const rand = (shape: number[]) => tf.randomUniform(shape, -1, 1, 'float32', seed++);

type Layer = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** Value and gradients of Σ f(x, w, b)·dy w.r.t. x, w, b (dy fixed, random). */
function valueAndGrads(f: Layer, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(x, w, b), dy)),
    )(xs);
    return [value, ...grads];
  });
}

/** Runs `f` on the stock kernels (the TF.js-op fallbacks of dense and layerNorm), then puts the native set back. */
function stockKernels(f: () => void): void {
  if (!hasKernel(LAB_DENSE)) {
    f();
    return;
  }
  restoreStockKernels();
  try {
    f();
  } finally {
    registerNativeKernels(1);
  }
}

function sameWithVariables(): void {
  const layers: Record<string, Layer> = {
    dense: (x, w, b) => dense({ 'l.w': w, 'l.b': b } as unknown as Params, 'l', x as tf.Tensor2D),
    layerNorm: (x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D),
  };
  const shapes = { dense: [[7, 5], [5, 3], [3]], layerNorm: [[7, 5], [5], [5]] };
  for (const [name, f] of Object.entries(layers)) {
    const [x, w, b] = shapes[name as keyof typeof shapes].map(rand);
    const [wv, bv] = [tf.variable(w), tf.variable(b)];
    const dy = rand([7, name === 'dense' ? 3 : 5]);
    const start = tf.memory().numTensors;
    const fromTensors = valueAndGrads(f, [x, w, b], dy);
    const fromVariables = valueAndGrads(f, [x, wv, bv], dy);
    fromTensors.forEach((t, i) => {
      assertSameBits(fromVariables[i], t, `${name} ${i ? `grad ${i - 1}` : 'value'}`);
    });
    tf.dispose([...fromTensors, ...fromVariables]);
    assert.equal(tf.memory().numTensors, start, `${name}: tensors leaked`);
    tf.dispose([x, w, b, wv, bv, dy]);
  }
}

test('dense and layerNorm: the same value and gradients with parameters as variables or tensors, no leak', () => {
  sameWithVariables(); // the fused kernels where the backend has them
  stockKernels(sameWithVariables); // the TF.js-op fallbacks
});

test("sum: tf.sum's value and gradient bit for bit (dy tiled, not multiplied by ones)", () => {
  const cases: [number[], number | number[] | undefined, boolean][] = [
    [[4, 3, 5], 1, false],
    [[2, 3, 4, 5], -1, false],
    [[2, 3, 4, 5], 2, false],
    [[6, 7], undefined, false],
    [[6, 7], -1, true],
    [[3, 4, 5], [0, 2], true],
  ];
  for (const [shape, axis, keepDims] of cases) {
    const start = tf.memory().numTensors;
    tf.tidy(() => {
      const x = rand(shape);
      const dy = rand(tf.sum(x, axis, keepDims).shape);
      const run = (f: (x: tf.Tensor) => tf.Tensor) => {
        const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => tf.sum(tf.mul(f(z), dy)))(x);
        return [f(x), value, grad];
      };
      const ours = run((z) => sum(z, axis, keepDims));
      const ref = run((z) => tf.sum(z, axis, keepDims));
      ours.forEach((t, i) => {
        assertSameBits(t, ref[i], `sum [${shape}] axis ${axis} #${i}`);
      });
    });
    assert.equal(tf.memory().numTensors, start, 'tensors leaked');
  }
});
