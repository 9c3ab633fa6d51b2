/**
 * Every hand-written gradient (the wasm workarounds) against PyTorch golden values
 * and against central finite differences.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { embed, layerNorm, logSigmoid, patchify, quickGelu } from '../lib';
import { assertClose, loadGolden, numericGrad, setup, tensorOf } from './helpers';

before(setup);

/** Weighted sum Σ dy·op(x): its gradient w.r.t. x is the vector-Jacobian product with dy. */
function vjpCheck(name: string, op: (x: tf.Tensor) => tf.Tensor) {
  const g = loadGolden().ops;
  const x = tensorOf(g.x);
  const dy = tensorOf(g.dy);
  assertClose(op(x).dataSync(), g[name].y, `${name} value`, 1e-5, 1e-5);
  const f = (z: tf.Tensor) => tf.sum(tf.mul(op(z), dy)) as tf.Scalar;
  const analytic = tf.grad(f)(x).dataSync();
  assertClose(analytic, g[name].dx, `${name} grad vs PyTorch`, 1e-5, 1e-4);
  // finite differences away from the ±40 extremes (where float32 steps lose precision)
  const xs = tf.slice(x, [1, 0], [4, -1]);
  const dys = tf.slice(dy, [1, 0], [4, -1]);
  const fs = (z: tf.Tensor) => tf.sum(tf.mul(op(z), dys)) as tf.Scalar;
  assertClose(
    tf.grad(fs)(xs).dataSync(),
    numericGrad(fs, xs, 1e-2),
    `${name} grad vs finite differences`,
    2e-2,
    2e-2,
  );
}

test('logSigmoid: stable values and correct gradient (wasm stock gradient is wrong)', () => {
  vjpCheck('logSigmoid', logSigmoid);
  const big = logSigmoid(tf.tensor1d([-100, 100])).dataSync();
  assert.ok(Math.abs(big[0] + 100) < 1e-4 && Math.abs(big[1]) < 1e-6, `extremes: ${big}`);
});

test('quickGelu (x·σ(1.702x)) value and custom gradient', () => {
  vjpCheck('quickGelu', quickGelu);
});

test('layerNorm custom gradient for x, gamma and beta', () => {
  const g = loadGolden().ops;
  const [x, gamma, beta, dy] = [tensorOf(g.x), tensorOf(g.gamma), tensorOf(g.beta), tensorOf(g.dy)];
  const ln = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    layerNorm(a as tf.Tensor2D, b as tf.Tensor1D, c as tf.Tensor1D);
  assertClose(ln(x, gamma, beta).dataSync(), g.layerNorm.y, 'layerNorm value', 1e-4, 1e-4);
  const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(tf.mul(ln(a, b, c), dy)) as tf.Scalar;
  const [dx, dg, db] = tf.grads(f)([x, gamma, beta]);
  assertClose(dx.dataSync(), g.layerNorm.dx, 'layerNorm dx', 1e-4, 1e-3);
  assertClose(dg.dataSync(), g.layerNorm.dgamma, 'layerNorm dgamma', 1e-4, 1e-4);
  assertClose(db.dataSync(), g.layerNorm.dbeta, 'layerNorm dbeta', 1e-5, 1e-5);
  // finite differences on the unit-scale rows (row 4 has variance ~1e-4: a float32 step cannot resolve it)
  const x4 = tf.slice(x, [0, 0], [4, -1]);
  const dy4 = tf.slice(dy, [0, 0], [4, -1]);
  const fx = (a: tf.Tensor) => tf.sum(tf.mul(ln(a, gamma, beta), dy4)) as tf.Scalar;
  const fd = numericGrad(fx, x4, 1e-2);
  assertClose(tf.grad(fx)(x4).dataSync(), fd, 'layerNorm dx vs finite differences', 2e-2, 2e-2);
});

test('embed (one-hot matmul instead of gather) has the lookup value and a scatter-add gradient', () => {
  const table = tf.tensor2d([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  const ids = tf.tensor1d([2, 0, 2], 'int32');
  assertClose(embed(ids, table).dataSync(), [5, 6, 1, 2, 5, 6], 'embed value', 0, 0);
  const w = tf.tensor2d([
    [1, -1],
    [2, 0.5],
    [-3, 4],
  ]);
  const f = (t: tf.Tensor) => tf.sum(tf.mul(embed(ids, t as tf.Tensor2D), w)) as tf.Scalar;
  // row 2 is used twice: its gradient is w[0] + w[2]; row 1 is unused
  assertClose(tf.grad(f)(table).dataSync(), [2, 0.5, 0, 0, -2, 3], 'embed grad', 1e-6, 0);
  assertClose(
    tf.grad(f)(table).dataSync(),
    numericGrad(f, table, 1e-1),
    'embed grad vs fd',
    1e-3,
    1e-3,
  );
});

test('patchify by reshape/transpose equals an explicit loop over patches', () => {
  const B = 2;
  const S = 8;
  const P = 4;
  const data = Float32Array.from({ length: B * S * S * 3 }, (_, i) => i);
  const got = patchify(tf.tensor4d(data, [B, S, S, 3]), P).dataSync();
  const want: number[] = [];
  for (let b = 0; b < B; b++)
    for (let gi = 0; gi < S / P; gi++)
      for (let gj = 0; gj < S / P; gj++)
        for (let pi = 0; pi < P; pi++)
          for (let pj = 0; pj < P; pj++)
            for (let c = 0; c < 3; c++)
              want.push(data[((b * S + gi * P + pi) * S + gj * P + pj) * 3 + c]);
  assertClose(got, want, 'patchify', 0, 0);
});

test('batched 3-D attention matmuls: gradient agrees with finite differences', () => {
  // the attention path keeps activations 2-D and only uses 3-D × 3-D matmuls
  const q = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 1);
  const k = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 2);
  const f = (x: tf.Tensor) =>
    tf.sum(
      tf.mul(tf.softmax(tf.matMul(x, k, false, true)), tf.range(0, 18).reshape([2, 3, 3])),
    ) as tf.Scalar;
  assertClose(tf.grad(f)(q).dataSync(), numericGrad(f, q, 1e-2), 'attention grad', 2e-2, 2e-2);
});
