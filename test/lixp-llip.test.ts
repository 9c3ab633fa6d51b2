/**
 * LIxP and Llip losses against independent PyTorch implementations (float64,
 * test/reference/make_golden.py: masked_fill(-inf) attention for LIxP, batched
 * matmul mixing for Llip's first form), plus the invariants each method rests on.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { l2normalize } from '../lib/model/ops';
import { contextualize, type LixpParams, lixpLoss } from '../lib/objectives/lixp';
import { type LlipParams, llipLoss, llipMix } from '../lib/objectives/llip';
import { siglipLoss, sigmoidPairLoss } from '../lib/objectives/siglip';
import { assertClose, loadGolden, setup, tensorOf } from './helpers';

before(setup);

const LIXP_NAMES = ['logTau1', 'bias1', 'logTau2', 'bias2', 'logTauCtx'] as const;

test('lixpLoss and its gradients (embeddings and all five scalars) match PyTorch', () => {
  const c = loadGolden().lixp;
  const scalars = LIXP_NAMES.map((n) => tf.scalar(c.params[n]));
  const f = (img: tf.Tensor, txt: tf.Tensor, ...s: tf.Tensor[]) => {
    const p = Object.fromEntries(LIXP_NAMES.map((n, i) => [n, s[i]])) as unknown as LixpParams;
    return lixpLoss(img as tf.Tensor2D, txt as tf.Tensor2D, p, c.alpha);
  };
  const { value, grads } = tf.valueAndGrads(f)([tensorOf(c.img), tensorOf(c.txt), ...scalars]);
  assertClose(value.dataSync(), c.loss, 'lixp loss', 1e-5, 1e-5);
  assertClose(grads[0].dataSync(), c.dImg, 'lixp dImg', 1e-5, 1e-4);
  assertClose(grads[1].dataSync(), c.dTxt, 'lixp dTxt', 1e-5, 1e-4);
  LIXP_NAMES.forEach((n, i) => {
    assertClose(grads[2 + i].dataSync(), c.dParams[n], `lixp d${n}`, 1e-5, 1e-4);
  });
});

test('LIxP: no image attends to itself; alpha = 1 is SigLIP', () => {
  tf.tidy(() => {
    const c = loadGolden().lixp;
    const img = tensorOf(c.img) as tf.Tensor2D;
    const txt = tensorOf(c.txt) as tf.Tensor2D;
    // Scaling image 0's raw embedding keeps its unit key and query, so only its
    // value changes: image 0's own context must stay the same (it never reads
    // itself), image 1's must move (it does read image 0).
    const bumped = tf.mul(img, tf.tensor2d([3, 1, 1, 1, 1, 1], [6, 1])) as tf.Tensor2D;
    const before = contextualize(img, tf.scalar(-1));
    const after = contextualize(bumped, tf.scalar(-1));
    const row = (x: tf.Tensor, i: number) => Array.from(tf.slice(x, [i, 0], [1, -1]).dataSync());
    assertClose(row(after, 0), row(before, 0), 'context of image 0 ignores image 0', 1e-6, 1e-5);
    const moved = row(after, 1).some((v, j) => Math.abs(v - row(before, 1)[j]) > 1e-3);
    assert.ok(moved, 'context of image 1 reads image 0');
    const p = Object.fromEntries(
      LIXP_NAMES.map((n) => [n, tf.scalar(c.params[n])]),
    ) as unknown as LixpParams;
    const siglip = siglipLoss(l2normalize(img), txt, p.logTau1, p.bias1).dataSync()[0];
    assertClose(lixpLoss(img, txt, p, 1).dataSync(), siglip, 'alpha = 1', 1e-6, 1e-6);
    assert.throws(() => lixpLoss(img, txt, p, 1.5), /alpha must be in \[0, 1\]/);
  });
});

function llipArgs(c: any): tf.Tensor[] {
  const p = c.params;
  return [
    tensorOf(c.mix),
    tensorOf(c.captions),
    ...['wq', 'wk', 'wv', 'wo'].map((n) => tensorOf(p[n])),
  ].concat([tf.scalar(p.logScale), tf.scalar(p.bias)]);
}

/**
 * This fixture is Llip's first form in the lab: one key and value projection
 * shared by the K tokens, the caption both query source and target. It is the
 * paper's form (test/llip.test.ts) with W_K^k = W_K, W_V^k = W_V for every k.
 */
function llipParams(t: tf.Tensor[], K: number): LlipParams {
  const [wq, wk, wv, wo, logScale, bias] = t;
  const perToken = (w: tf.Tensor) => tf.tile(tf.expandDims(w, 0), [K, 1, 1]) as tf.Tensor3D;
  return { wq, wk: perToken(wk), wv: perToken(wv), wo, logScale, bias } as LlipParams;
}

test('llipMix, llipLoss and all gradients match PyTorch (shared projections)', () => {
  const c = loadGolden().llip;
  const cfg = { heads: c.heads, tau: c.tau };
  const args = llipArgs(c);
  const K = (args[0] as tf.Tensor3D).shape[1];
  const mix = args[0] as tf.Tensor3D;
  const z = llipMix(mix, args[1] as tf.Tensor2D, llipParams(args.slice(2), K), cfg);
  assertClose(z.dataSync(), c.z, 'llip z_ij', 1e-5, 1e-4);
  const f = (...t: tf.Tensor[]) => {
    const cap = t[1] as tf.Tensor2D; // query source and target
    return llipLoss(t[0] as tf.Tensor3D, cap, cap, llipParams(t.slice(2), K), cfg);
  };
  const { value, grads } = tf.valueAndGrads(f)(args);
  assertClose(value.dataSync(), c.loss, 'llip loss', 1e-5, 1e-5);
  const names = ['mix', 'captions', 'wq', 'wk', 'wv', 'wo', 'logScale', 'bias'];
  names.forEach((n, i) => {
    assertClose(grads[i].dataSync(), c.grads[n], `llip d${n}`, 1e-5, 1e-4);
  });
});

test('Llip with identical mixture tokens reduces to SigLIP on that token', () => {
  tf.tidy(() => {
    const c = loadGolden().llip;
    const args = llipArgs(c);
    const [B, K, D] = (args[0] as tf.Tensor3D).shape;
    const one = tf.slice(args[0], [0, 0, 0], [B, 1, D]); // token 0 of each image
    const same = tf.tile(one, [1, K, 1]) as tf.Tensor3D;
    const p = llipParams(args.slice(2), K);
    const cfg = { heads: c.heads, tau: c.tau };
    // Any mixture of equal tokens is that token: z_ij = h_i W_V W_O for every caption j.
    const wv = tf.squeeze(tf.slice(p.wv, [0, 0, 0], [1, D, D]), [0]) as tf.Tensor2D;
    const img = tf.matMul(tf.matMul(tf.reshape(one, [B, D]), wv), p.wo) as tf.Tensor2D;
    const cap = args[1] as tf.Tensor2D;
    const cos = tf.matMul(l2normalize(img), l2normalize(cap), false, true) as tf.Tensor2D;
    const want = sigmoidPairLoss(cos, p.logScale, p.bias).dataSync()[0];
    assertClose(llipLoss(same, cap, cap, p, cfg).dataSync(), want, 'equal tokens', 1e-5, 1e-5);
    assert.throws(() => llipMix(same, cap, p, { heads: 3, tau: 1 }), /not divisible/);
  });
});
