/**
 * Each LIxP ablation switch does what it claims (issue 13): tested on the
 * contextualiser and the objective directly, against definitions written
 * here independently (stop-gradient as a constant copy, the residual as an
 * added row, the mask as a zero weight), never against the code's own output.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initParams } from '../lib/model/params';
import {
  LIXP_PAPER,
  type LixpConfig,
  type LixpSwitches,
  lixp,
  lixpContext,
  lixpLoss,
} from '../lib/objectives/lixp';
import { ablationLabel, LIXP_SLIDES, shotsToMatch } from '../lib/runs/lixp-report';
import { assertClose, setup } from './helpers';

before(setup);

const [B, D] = [6, 8];
const raw = (seed: number) => tf.randomNormal([B, D], 0, 1, 'float32', seed) as tf.Tensor2D;
const logTauCtx = tf.scalar(Math.log(0.5));
const sw = (s: Partial<LixpSwitches>): LixpSwitches => ({ ...LIXP_PAPER, ...s });
const cfgOf = (s: Partial<LixpConfig>): LixpConfig => ({ ...lixp.defaults, ...s });
const paramsOf = (cfg: LixpConfig, seed = 1) =>
  initParams(lixp.params(cfg, { embedDim: D } as never), seed);

/** ∂ Σ(r ⊙ f(x)) / ∂x for a fixed random r. */
function gradOf(f: (x: tf.Tensor2D) => tf.Tensor2D, x: tf.Tensor2D): Float32Array {
  const r = tf.randomNormal([B, D], 0, 1, 'float32', 99);
  const g = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(f(z as tf.Tensor2D), r)))(x);
  return g.dataSync() as Float32Array;
}

test('the objective at the paper switches is lixpLoss, and its metrics are the scalars', () => {
  const cfg = cfgOf({ alpha: 0.7 });
  const p = paramsOf(cfg);
  const [img, txt] = [raw(1), raw(2)];
  const { loss, metrics } = lixp.loss({ image: img, text: txt }, p, cfg);
  const s = {
    logTau1: p.logTau1,
    bias1: p.bias1,
    logTau2: p.logTau2,
    bias2: p.bias2,
    logTauCtx: p.logTauCtx,
  };
  const ref = lixpLoss(img, tf.div(txt, tf.norm(txt, 2, 1, true)) as tf.Tensor2D, s as never, 0.7);
  assertClose(loss.dataSync(), ref.dataSync()[0], 'loss', 1e-6, 1e-6);
  assertClose(metrics.tauCtx.dataSync(), 1, 'tauCtx metric', 1e-6, 0);
  assertClose(
    tf.add(tf.mul(metrics.lossBase, 0.7), tf.mul(metrics.lossCtx, 0.3)).dataSync(),
    loss.dataSync()[0],
    'loss = α·base + (1 − α)·ctx',
    1e-6,
    1e-6,
  );
});

test('maskSelf: with it an image gives itself weight 0, without it a positive weight', () => {
  const x = raw(3);
  const on = lixpContext(x, logTauCtx, sw({})).attention.dataSync();
  const off = lixpContext(x, logTauCtx, sw({ maskSelf: false })).attention.dataSync();
  for (let i = 0; i < B; i++) {
    assert.equal(on[i * B + i], 0);
    assert.ok(off[i * B + i] > 0.05, `self weight ${off[i * B + i]}`); // itself is its nearest key
  }
});

test('stopGrad values: the gradient is that of A(x)·C with C a constant copy of x', () => {
  const x = raw(4);
  const C = tf.tensor2d(x.arraySync());
  const got = gradOf((z) => lixpContext(z, logTauCtx, sw({ stopGrad: 'values' })).xCtx, x);
  const want = gradOf((z) => tf.matMul(lixpContext(z, logTauCtx, sw({})).attention, C), x);
  assertClose(got, want, 'd/dx with values stopped', 1e-6, 1e-5);
  const none = gradOf((z) => lixpContext(z, logTauCtx, sw({})).xCtx, x);
  assert.ok(Math.max(...none.map((g, i) => Math.abs(g - want[i]))) > 1e-3, 'values carry gradient');
});

test('stopGrad keys: image j reaches row i (j ≠ i) only through its value, A_ij · r_i', () => {
  const x = raw(5);
  const r = tf.randomNormal([1, D], 0, 1, 'float32', 7);
  const row = (s: Partial<LixpSwitches>) =>
    tf
      .grad((z: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.slice(lixpContext(z as tf.Tensor2D, logTauCtx, sw(s)).xCtx, [0, 0], [1, D]), r),
        ),
      )(x)
      .arraySync() as number[][];
  const A = lixpContext(x, logTauCtx, sw({})).attention.arraySync() as number[][];
  const rv = (r.arraySync() as number[][])[0];
  const g = row({ stopGrad: 'keys' });
  for (let j = 1; j < B; j++)
    assertClose(
      g[j],
      rv.map((v) => A[0][j] * v),
      `image ${j} → row 0`,
      1e-6,
      1e-5,
    );
  const both = row({ stopGrad: 'both' }); // only image 0's query is left
  for (let j = 1; j < B; j++) assertClose(both[j], new Array(D).fill(0), `both: image ${j}`, 0, 0);
});

test('qkNorm off: scaling an image changes where it attends; on: it does not', () => {
  const x = raw(6);
  const scaled = tf.mul(x, tf.tensor2d([[3], [1], [1], [1], [1], [1]])) as tf.Tensor2D;
  const row0 = (z: tf.Tensor2D, s: Partial<LixpSwitches>) =>
    Array.from(lixpContext(z, logTauCtx, sw(s)).attention.dataSync()).slice(0, B);
  assertClose(row0(scaled, {}), row0(x, {}), 'qkNorm on', 1e-6, 1e-5);
  const [a, b] = [row0(scaled, { qkNorm: false }), row0(x, { qkNorm: false })];
  assert.ok(Math.max(...a.map((v, i) => Math.abs(v - b[i]))) > 1e-3);
});

test('residual: X̂ctx = X + A·X', () => {
  const x = raw(7);
  const plain = lixpContext(x, logTauCtx, sw({})).xCtx;
  const res = lixpContext(x, logTauCtx, sw({ residual: true })).xCtx;
  assertClose(res.dataSync(), tf.add(x, plain).dataSync(), 'residual', 1e-6, 1e-6);
});

test('images+texts memory: [B, 2B] attention, own caption weight 0, other captions read', () => {
  const [x, t] = [raw(8), raw(9)];
  const A = lixpContext(x, logTauCtx, sw({ memory: 'images+texts' }), { txtRaw: t }).attention;
  assert.deepEqual(A.shape, [B, 2 * B]);
  const a = A.arraySync() as number[][];
  for (let i = 0; i < B; i++) {
    assert.equal(a[i][i], 0, 'own image');
    assert.equal(a[i][B + i], 0, 'own caption');
    assert.ok(a[i].slice(B).reduce((s, v) => s + v, 0) > 0.1, 'captions get weight');
  }
  const noSelfMask = lixpContext(x, logTauCtx, sw({ memory: 'images+texts', maskSelf: false }), {
    txtRaw: t,
  }).attention.arraySync() as number[][];
  for (let i = 0; i < B; i++) assert.equal(noSelfMask[i][B + i], 0, 'own caption, maskSelf off');
});

test('temperatures and a frozen τctx: the tied or frozen scalar is no parameter', () => {
  const names = (c: Partial<LixpConfig>) =>
    Object.keys(lixp.params(cfgOf(c), { embedDim: D } as never));
  assert.deepEqual(names({}), ['logTau1', 'bias1', 'logTau2', 'bias2', 'logTauCtx']);
  assert.deepEqual(names({ temperatures: 'tau1=tau2' }), [
    'logTau1',
    'bias1',
    'bias2',
    'logTauCtx',
  ]);
  assert.deepEqual(names({ temperatures: 'tau2=tauCtx' }), [
    'logTau1',
    'bias1',
    'logTau2',
    'bias2',
  ]);
  assert.deepEqual(names({ learnTauCtx: false }), ['logTau1', 'bias1', 'logTau2', 'bias2']);
  const [img, txt] = [raw(1), raw(2)];
  const metrics = (c: Partial<LixpConfig>) => {
    const cfg = cfgOf({ tau1: 7, tau2: 12, tauCtx: 0.3, ...c });
    const m = lixp.loss({ image: img, text: txt }, paramsOf(cfg), cfg).metrics;
    return { t1: m.tau1.dataSync()[0], t2: m.tau2.dataSync()[0], tc: m.tauCtx.dataSync()[0] };
  };
  const tied12 = metrics({ temperatures: 'tau1=tau2' });
  assertClose([tied12.t2], [7], 'τ2 = τ1', 1e-5, 0);
  const tied2c = metrics({ temperatures: 'tau2=tauCtx' });
  assertClose([tied2c.tc], [12], 'τctx = τ2', 1e-5, 0);
  assertClose([metrics({ learnTauCtx: false }).tc], [0.3], 'τctx frozen at its init', 1e-6, 0);
});

test('memoryNorm and valueHead: their weights exist, get gradients, and a head of identity is none', () => {
  const [img, txt] = [raw(1), raw(2)];
  for (const c of [{ memoryNorm: 'both' }, { valueHead: 'mlp3' }] as Partial<LixpConfig>[]) {
    const cfg = cfgOf({ ...c, alpha: 0 });
    const p = paramsOf(cfg);
    const own = Object.keys(p).filter((n) => n.startsWith('lixp.'));
    assert.ok(own.length >= 2, `${JSON.stringify(c)}: ${own}`);
    const { grads } = tf.variableGrads(
      () => lixp.loss({ image: img, text: txt }, p, cfg).loss,
      own.map((n) => p[n]),
    );
    for (const n of own)
      assert.ok(tf.sum(tf.abs(grads[p[n].name])).dataSync()[0] > 0, `${n} gets no gradient`);
  }
  const linear = cfgOf({ valueHead: 'linear' });
  const p = paramsOf(linear);
  p['lixp.value.0.w'].assign(tf.eye(D));
  const withHead = lixpContext(img, logTauCtx, sw({ valueHead: 'linear' }), { heads: p }).xCtx;
  assertClose(
    withHead.dataSync(),
    lixpContext(img, logTauCtx, sw({})).xCtx.dataSync(),
    'identity head',
    1e-6,
    1e-6,
  );
});

test('same-class attention: 1 when every image shares the identity, 0 when none does', () => {
  const cfg = cfgOf({});
  const [img, txt] = [raw(1), raw(2)];
  const m = (identity: number[]) =>
    lixp.loss({ image: img, text: txt }, paramsOf(cfg), cfg, {
      identity: Int32Array.from(identity),
    }).metrics;
  const all = m([3, 3, 3, 3, 3, 3]);
  assertClose(
    [all.ctxSameClass.dataSync()[0], all.ctxSameClassChance.dataSync()[0]],
    [1, 1],
    'all same',
    1e-6,
    0,
  );
  const none = m([0, 1, 2, 3, 4, 5]);
  assertClose(
    [none.ctxSameClass.dataSync()[0], none.ctxSameClassChance.dataSync()[0]],
    [0, 0],
    'none',
    0,
    0,
  );
  const pairs = m([0, 0, 1, 1, 2, 2]); // each image has one of 5 others: chance 1/5
  assertClose(pairs.ctxSameClassChance.dataSync(), 0.2, 'chance', 1e-7, 0);
  const A = lixpContext(img, tf.scalar(0), sw({})).attention.arraySync() as number[][];
  const want = [0, 1, 2, 3, 4, 5].reduce((s, i) => s + A[i][i ^ 1], 0) / B; // partner of i is i xor 1
  assertClose(pairs.ctxSameClass.dataSync(), want, 'weight on the partner', 1e-6, 1e-6);
});

test('separate context: each image attends only to the other half of the batch', () => {
  const a = lixpContext(
    raw(3),
    logTauCtx,
    sw({ context: 'separate' }),
  ).attention.arraySync() as number[][];
  const half = B / 2;
  for (let i = 0; i < B; i++) {
    const other = a[i].filter((_, j) => j < half !== i < half);
    assertClose(
      [other.reduce((s, v) => s + v, 0)],
      [1],
      `row ${i} sums to 1 over the other half`,
      1e-6,
      0,
    );
    assert.ok(other.every((v) => v > 0));
  }
});

test('every variant of the ablation grid has its row of the slides, and labels name one switch', () => {
  const grid = require('../sweeps/lixp-ablations').default as { axes: { objective: object[] } };
  const labels = grid.axes.objective.map((o) =>
    ablationLabel(JSON.stringify({ ...lixp.defaults, ...o })),
  );
  assert.equal(new Set(labels).size, labels.length, `labels repeat: ${labels}`);
  for (const l of labels) assert.ok(l in LIXP_SLIDES, `no slides row for ${l}`);
  assert.equal(ablationLabel({ name: 'lixp', stopGrad: 'values' }), 'stopGrad=values');
});

test('shotsToMatch interpolates in log2(k) and says null when never reached', () => {
  const row = (k: number, mean: number) => ({
    task: 's',
    method: 'prototype' as const,
    k,
    mean,
    std: 0,
    n: 3,
    ci95: 0,
  });
  const base = [row(1, 0.4), row(2, 0.5), row(4, 0.6), row(8, 0.7)];
  assertClose(
    [shotsToMatch(base, [row(8, 0.55)], 'prototype', 8)!],
    [2 ** 1.5],
    'between 2 and 4',
    1e-12,
    0,
  );
  assert.equal(shotsToMatch(base, [row(8, 0.3)], 'prototype', 8), 1);
  assert.equal(shotsToMatch(base, [row(8, 0.9)], 'prototype', 8), null);
});
