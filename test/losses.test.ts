/** SigLIP and CLIP losses against PyTorch (float64) golden values and finite differences. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { clipLoss, l2normalize, siglipLoss } from '../lib';
import { assertClose, loadGolden, numericGrad, setup, tensorOf } from './helpers';

before(setup);

test('siglipLoss and its gradients match PyTorch', () => {
  for (const [c, k] of loadGolden().losses.map((c: any, i: number) => [c, i])) {
    const args = [tensorOf(c.img), tensorOf(c.txt), tf.scalar(c.logScale), tf.scalar(c.bias)];
    const f = (a: tf.Tensor, b: tf.Tensor, s: tf.Tensor, bb: tf.Tensor) =>
      siglipLoss(a as tf.Tensor2D, b as tf.Tensor2D, s as tf.Scalar, bb as tf.Scalar);
    const { value, grads } = tf.valueAndGrads(f)(args);
    assertClose(value.dataSync(), c.siglip.loss, `siglip case ${k} loss`, 1e-4, 1e-5);
    grads.forEach((g, i) => {
      assertClose(g.dataSync(), c.siglip.grads[i], `siglip case ${k} grad ${i}`, 1e-5, 1e-4);
    });
  }
});

test('clipLoss and its gradients match PyTorch', () => {
  for (const [c, k] of loadGolden().losses.map((c: any, i: number) => [c, i])) {
    const args = [tensorOf(c.img), tensorOf(c.txt), tf.scalar(c.logScale)];
    const f = (a: tf.Tensor, b: tf.Tensor, s: tf.Tensor) =>
      clipLoss(a as tf.Tensor2D, b as tf.Tensor2D, s as tf.Scalar);
    const { value, grads } = tf.valueAndGrads(f)(args);
    assertClose(value.dataSync(), c.clip.loss, `clip case ${k} loss`, 1e-4, 1e-5);
    grads.forEach((g, i) => {
      assertClose(g.dataSync(), c.clip.grads[i], `clip case ${k} grad ${i}`, 1e-5, 1e-4);
    });
  }
});

test('siglipLoss is the hand-computed value on a 2×2 toy batch', () => {
  // img = txt = identity rows: ⟨img_i, txt_j⟩ = δ_ij; with t = 0, b = 0 the logits are δ_ij.
  const e = tf.tensor2d([
    [1, 0],
    [0, 1],
  ]);
  const got = siglipLoss(e, e, tf.scalar(0), tf.scalar(0)).dataSync()[0];
  // per image: −log σ(1) − log σ(−0) = log(1 + e^−1) + log 2; summed over 2 images, divided by B = 2
  const want = Math.log(1 + Math.exp(-1)) + Math.log(2);
  assert.ok(Math.abs(got - want) < 1e-6, `got ${got}, want ${want}`);
});

test('loss gradient w.r.t. the bias agrees with finite differences', () => {
  const c = loadGolden().losses[1];
  const img = tensorOf(c.img) as tf.Tensor2D;
  const txt = tensorOf(c.txt) as tf.Tensor2D;
  const f = (b: tf.Tensor) => siglipLoss(img, txt, tf.scalar(c.logScale), b as tf.Scalar);
  const analytic = tf.grad(f)(tf.scalar(c.bias)).dataSync()[0];
  const numeric = numericGrad(f, tf.scalar(c.bias), 1e-2)[0];
  assert.ok(
    Math.abs(analytic - numeric) < 2e-3 * Math.max(1, Math.abs(numeric)),
    `${analytic} vs ${numeric}`,
  );
});

test('l2normalize gives unit rows and leaves a zero row finite', () => {
  const x = l2normalize(
    tf.tensor2d([
      [3, 4],
      [0, 0],
    ]),
  );
  assertClose(x.dataSync(), [0.6, 0.8, 0, 0], 'l2normalize', 1e-6, 0);
});

test('shape mismatch is a clear error', () => {
  assert.throws(
    () => siglipLoss(tf.zeros([2, 3]), tf.zeros([3, 3]), tf.scalar(0), tf.scalar(0)),
    /expected shape \[2,3\]/,
  );
});
