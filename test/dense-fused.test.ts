/**
 * The fused dense layer (LabDense / LabDenseGrad, lib/backend/native/denseops.h)
 * against the op-by-op MatMul + Add it replaces: y and the gradients w.r.t. x,
 * w and b bit for bit, with and without bias; a finite-difference check; whole
 * training steps equal with it on and off, with a flat tensor count; and the
 * switches (dense: false, LAB_NATIVE_DENSE=0) that keep the op path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LAB_DENSE, LAB_DENSE_GRAD } from '../lib/backend/kernels';
import { dense } from '../lib/model/layers';
import type { Params } from '../lib/model/params';
import { createModel } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import { trainLoop } from '../lib/train/loop';
import { defaultOptim, disposeAdamState } from '../lib/train/optim';
import { assertClose, assertSameBits, numericGrad, setup, withKernels } from './helpers';

/** Runs `f` on the op path: the native kernels without the fused dense layer. */
const opByOp = <T>(f: () => T): T => withKernels(1, { dense: false }, f);

let seed = 5;
const rand = (shape: number[], scale = 1) =>
  tf.mul(tf.randomUniform(shape, -1, 1, 'float32', seed++), scale);

/** A layer's parameters as dense() reads them ('l.w', 'l.b'). */
const layer = (w: tf.Tensor, b?: tf.Tensor) =>
  ({ 'l.w': w, ...(b ? { 'l.b': b } : {}) }) as unknown as Params;

/** y and the gradients of Σ y·dy w.r.t. x, w (and b) of one dense layer. */
function evaluate(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, dy: tf.Tensor) {
  const f = (xi: tf.Tensor, wi: tf.Tensor, bi?: tf.Tensor) => {
    return dense(layer(wi, bi), 'l', xi as tf.Tensor2D);
  };
  const loss = (...a: tf.Tensor[]) => tf.sum(tf.mul(f(a[0], a[1], a[2]), dy)) as tf.Scalar;
  const grads = tf.grads(loss)(b ? [x, w, b] : [x, w]);
  return [f(x, w, b ?? undefined), ...grads].map((t) => t.dataSync() as Float32Array);
}

// [N, Din, Dout]: the lab's shapes (B·T × 64 → 192, 256 → 64), odd and degenerate ones
const SHAPES = [
  [1, 1, 1],
  [5, 3, 7],
  [33, 17, 1],
  [64, 64, 192],
  [257, 256, 64],
  [96, 31, 45],
];

test('fused dense: y, dx, dw and db equal the op-by-op MatMul + Add bit for bit', async (t) => {
  await setup();
  if (!hasKernel(LAB_DENSE)) return t.skip(`no ${LAB_DENSE} on ${tf.getBackend()}`);
  for (const [N, Din, Dout] of SHAPES) {
    for (const bias of [true, false]) {
      tf.tidy(() => {
        const [x, w, dy] = [rand([N, Din], 3), rand([Din, Dout], 0.2), rand([N, Dout])];
        const b = bias ? rand([Dout]) : null;
        const fused = evaluate(x, w, b, dy);
        const ref = opByOp(() => evaluate(x, w, b, dy));
        const names = ['y', 'dx', 'dw', 'db'];
        assert.equal(fused.length, bias ? 4 : 3);
        fused.forEach((v, i) => {
          assertSameBits(v, ref[i], `[${N}, ${Din}, ${Dout}] bias ${bias} ${names[i]}`);
        });
      });
    }
  }
});

test('fused dense: one kernel each way, the op path without it', async (t) => {
  await setup();
  if (!hasKernel(LAB_DENSE)) return t.skip(`no ${LAB_DENSE} on ${tf.getBackend()}`);
  const kernels = async () => {
    const [x, w, b, dy] = [rand([8, 4]), rand([4, 6]), rand([6]), rand([8, 6])];
    const info = await tf.profile(() => {
      tf.tidy(() => evaluate(x, w, b, dy));
      return tf.scalar(0);
    });
    tf.dispose([x, w, b, dy]);
    return info.kernelNames;
  };
  const fused = await kernels();
  assert.ok(fused.includes(LAB_DENSE) && fused.includes(LAB_DENSE_GRAD), `${fused}`);
  assert.ok(!fused.includes('BatchMatMul') && !fused.includes('Add'), `${fused}`);
  const ref = await opByOp(kernels);
  assert.ok(!ref.includes(LAB_DENSE) && ref.includes('BatchMatMul'), `${ref}`);
  assert.equal(
    opByOp(() => hasKernel(LAB_DENSE)),
    false,
  );
});

test('LAB_NATIVE_DENSE=0 switches the fused dense layer off', async (t) => {
  await setup();
  if (!hasKernel(LAB_DENSE)) return t.skip(`no ${LAB_DENSE} on ${tf.getBackend()}`);
  const root = path.join(__dirname, '..');
  const code = [
    `const { initBackend } = require(${JSON.stringify(path.join(root, 'lib/backend/index'))});`,
    `const k = require(${JSON.stringify(path.join(root, 'lib/backend/kernels'))});`,
    `initBackend().then(() => console.log(JSON.stringify([k.hasKernel(k.LAB_DENSE), k.hasKernel(k.QUICK_GELU)])));`,
  ].join('\n');
  const res = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    env: { ...process.env, LAB_NATIVE_DENSE: '0', LAB_THREADS: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const [denseOn, geluOn] = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '[]');
  assert.deepEqual([denseOn, geluOn], [false, true], 'dense off, the other fused kernels on');
});

test('fused dense: gradients match finite differences', async (t) => {
  await setup();
  if (!hasKernel(LAB_DENSE)) return t.skip(`no ${LAB_DENSE} on ${tf.getBackend()}`);
  tf.tidy(() => {
    const [x, w, b, dy] = [rand([3, 4]), rand([4, 5]), rand([5]), rand([3, 5])];
    const [, gx, gw, gb] = evaluate(x, w, b, dy);
    const loss = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.sum(tf.mul(dense(layer(wi, bi), 'l', xi as tf.Tensor2D), dy)) as tf.Scalar;
    const numeric = [
      numericGrad((v) => loss(v, w, b), x),
      numericGrad((v) => loss(x, v, b), w),
      numericGrad((v) => loss(x, w, v), b),
    ];
    [gx, gw, gb].forEach((g, i) => {
      assertClose(g, numeric[i], ['dx', 'dw', 'db'][i], 2e-3, 1e-2);
    });
  });
});

/** A small SigLIP model and a fixed random batch (bench/step.ts's set-up, smaller). */
function smallRun(steps: number) {
  const B = 8;
  const L = 16;
  const tower = { width: 16, depth: 1, heads: 2, mlpRatio: 2 };
  const cfg = {
    image: { imageSize: 32, patch: 8, ...tower, pool: 'map' as const, registers: 0 },
    text: { vocabSize: 120, contextLength: L, ...tower },
    embedDim: 16,
  };
  const model = createModel(cfg, 'siglip', 1, 0);
  const rng = new Rng(1);
  const images = Float32Array.from({ length: B * 3072 }, () => rng.uniform());
  const tokens = new Int32Array(B * L).map((_, i) =>
    i % L === 10 ? 1 : i % L > 10 ? 0 : 3 + rng.int(100),
  );
  const batch = { images, tokens, captions: [], size: B };
  const run = trainLoop(model, {
    steps,
    optim: defaultOptim,
    nextBatch: () => batch,
    quiet: true,
  });
  const params = Object.values(model.params).map((p) => p.dataSync().slice());
  disposeAdamState(run.adam);
  tf.dispose(Object.values(model.params));
  return { history: run.history, params };
}

test('training steps with the fused dense layer: same losses and weights, flat tensor count', async (t) => {
  await setup();
  if (!hasKernel(LAB_DENSE)) return t.skip(`no ${LAB_DENSE} on ${tf.getBackend()}`);
  const before = tf.memory().numTensors;
  const fused = smallRun(6);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  const counts = new Set(fused.history.map((r) => r.tensors));
  assert.equal(counts.size, 1, `tensor counts over the run: ${[...counts]}`);
  const ref = opByOp(() => smallRun(6));
  assert.deepEqual(
    fused.history.map((r) => r.loss),
    ref.history.map((r) => r.loss),
  );
  assert.equal(fused.history[0].tensors, ref.history[0].tensors, 'tensors held between steps');
  fused.params.forEach((p, i) => {
    assertSameBits(p as Float32Array, ref.params[i] as Float32Array, `param ${i}`);
  });
});
