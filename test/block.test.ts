/**
 * The fused transformer block (LabBlock / LabBlockGrad, lib/backend/native/blockops.h)
 * against the op-by-op block it replaces (layer norms, dense layers, attention,
 * quick GELU and residual adds, each its own kernel): the output and the
 * gradients w.r.t. x and all twelve parameters bit for bit, with and without a
 * mask, at 1 and 2 threads; one kernel each way; whole training steps equal;
 * clear errors on bad shapes; and the LAB_NATIVE_BLOCK=0 switch.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LAB_BLOCK, LAB_BLOCK_GRAD, runFused } from '../lib/backend/kernels';
import { block, blockSpecs } from '../lib/model/layers';
import type { Params } from '../lib/model/params';
import { createModel } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import { trainLoop } from '../lib/train/loop';
import { defaultOptim, disposeAdamState } from '../lib/train/optim';
import { assertSameBits, setup, withKernels } from './helpers';

let seed = 11;
const rand = (shape: number[], scale = 1) =>
  tf.mul(tf.randomUniform(shape, -1, 1, 'float32', seed++), scale);

/** Random parameters for one block under prefix 'b' (layer-norm gains near 1). */
function blockParams(D: number, mlpRatio: number): Params {
  const specs = blockSpecs('b', D, mlpRatio);
  return Object.fromEntries(
    Object.entries(specs).map(([name, s]) => {
      const t = rand(s.shape, name.endsWith('.g') ? 0.2 : 0.5);
      return [name, name.endsWith('.g') ? tf.add(t, 1) : t];
    }),
  ) as unknown as Params;
}

/** The block's output and the gradients of Σ out·dy w.r.t. x and every parameter (names sorted). */
function evaluate(p: Params, x: tf.Tensor2D, B: number, heads: number, mask: tf.Tensor2D | null) {
  const names = Object.keys(p).sort();
  const dy = rand(x.shape, 1);
  seed--; // the same dy for every path
  const f = (xi: tf.Tensor, ...ps: tf.Tensor[]) => {
    const q = Object.fromEntries(names.map((n, i) => [n, ps[i]])) as unknown as Params;
    return block(q, 'b', xi as tf.Tensor2D, B, heads, mask);
  };
  const loss = (...a: tf.Tensor[]) => tf.sum(tf.mul(f(a[0], ...a.slice(1)), dy)) as tf.Scalar;
  const ins = [x, ...names.map((n) => p[n])];
  const grads = tf.grads(loss)(ins);
  const out = [f(x, ...names.map((n) => p[n])), ...grads].map((t) => t.dataSync() as Float32Array);
  tf.dispose(dy);
  return { out, names: ['out', 'dx', ...names.map((n) => `d${n}`)] };
}

/** A causal [T, T] mask as the text tower builds it (−1e9 above the diagonal). */
function causal(T: number): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)),
    [T, T],
  );
}

// [B, T, D, heads, mlpRatio]: odd sizes, and the `lab` preset's towers (T 16, width 64, 4 heads)
const SHAPES = [
  [3, 5, 16, 2, 4],
  [2, 7, 12, 3, 2],
  [4, 16, 64, 4, 4],
];

test('fused block: output and every gradient equal the op-by-op block bit for bit', async (t) => {
  await setup();
  if (!hasKernel(LAB_BLOCK)) return t.skip(`no ${LAB_BLOCK} on ${tf.getBackend()}`);
  for (const [B, T, D, heads, mlp] of SHAPES) {
    for (const masked of [false, true]) {
      for (const threads of [1, 2]) {
        tf.tidy(() => {
          const p = blockParams(D, mlp);
          const x = rand([B * T, D], 2) as tf.Tensor2D;
          const mask = masked ? causal(T) : null;
          const fused = withKernels(threads, { block: true }, () => evaluate(p, x, B, heads, mask));
          const ref = withKernels(threads, { block: false }, () => evaluate(p, x, B, heads, mask));
          assert.equal(fused.out.length, 14);
          fused.out.forEach((v, i) => {
            const what = `[${B}, ${T}, ${D}] mask ${masked} ${threads}t ${fused.names[i]}`;
            assertSameBits(v, ref.out[i], what);
          });
        });
      }
    }
  }
});

test('fused block: one kernel each way, the op path without it', async (t) => {
  await setup();
  if (!hasKernel(LAB_BLOCK)) return t.skip(`no ${LAB_BLOCK} on ${tf.getBackend()}`);
  const kernels = async () => {
    const p = blockParams(8, 2);
    const x = rand([6, 8]) as tf.Tensor2D;
    const info = await tf.profile(() => {
      tf.tidy(() => evaluate(p, x, 2, 2, null));
      return tf.scalar(0);
    });
    tf.dispose([x, ...Object.values(p)]);
    return info.kernelNames;
  };
  const fused = await kernels();
  assert.ok(fused.includes(LAB_BLOCK) && fused.includes(LAB_BLOCK_GRAD), `${fused}`);
  assert.ok(!fused.includes('LabAttention') && !fused.includes('LabDense'), `${fused}`);
  const ref = await withKernels(1, { block: false }, kernels);
  assert.ok(!ref.includes(LAB_BLOCK) && ref.includes('LabAttention'), `${ref}`);
});

test('fused block: shapes that do not fit are errors naming the operand', async (t) => {
  await setup();
  if (!hasKernel(LAB_BLOCK)) return t.skip(`no ${LAB_BLOCK} on ${tf.getBackend()}`);
  tf.tidy(() => {
    const p = blockParams(8, 2);
    const ins = {
      ln1g: p['b.ln1.g'],
      ln1b: p['b.ln1.b'],
      wqkv: p['b.attn.qkv.w'],
      bqkv: p['b.attn.qkv.b'],
      wproj: p['b.attn.proj.w'],
      bproj: p['b.attn.proj.b'],
      ln2g: p['b.ln2.g'],
      ln2b: p['b.ln2.b'],
      w1: p['b.fc1.w'],
      b1: p['b.fc1.b'],
      w2: p['b.fc2.w'],
      b2: p['b.fc2.b'],
    };
    const attrs = { batch: 2, heads: 2, eps: 1e-5, scale: 0.5 };
    const x = rand([6, 8]);
    assert.throws(
      () => runFused(LAB_BLOCK, { x, ...ins, wproj: rand([8, 7]) }, attrs),
      /LabBlock: wproj \[8,7\] is not \[8,8\]/,
    );
    assert.throws(() => runFused(LAB_BLOCK, { x: rand([5, 8]), ...ins }, attrs), /x \[5,8\]/);
    assert.throws(
      () => runFused(LAB_BLOCK, { x, mask: rand([3, 2]), ...ins }, attrs),
      /mask \[3,2\] is not \[3, 3\]/,
    );
    const { b2: _, ...noBias } = ins;
    assert.throws(() => runFused(LAB_BLOCK, { x, ...noBias }, attrs), /LabBlock: needs/);
    const [, saved] = runFused(LAB_BLOCK, { x, ...ins }, attrs);
    const g = {
      ln1g: ins.ln1g,
      wqkv: ins.wqkv,
      wproj: ins.wproj,
      ln2g: ins.ln2g,
      w1: ins.w1,
      w2: ins.w2,
    };
    assert.throws(
      () => runFused(LAB_BLOCK_GRAD, { dy: x, saved: tf.slice(saved, 1), ...g }, attrs),
      /saved \[\d+\] is not this block's/,
    );
  });
});

test('LAB_NATIVE_BLOCK=0 switches the fused block off', async (t) => {
  await setup();
  if (!hasKernel(LAB_BLOCK)) return t.skip(`no ${LAB_BLOCK} on ${tf.getBackend()}`);
  const root = path.join(__dirname, '..');
  const code = [
    `const { initBackend } = require(${JSON.stringify(path.join(root, 'lib/backend/index'))});`,
    `const k = require(${JSON.stringify(path.join(root, 'lib/backend/kernels'))});`,
    `initBackend().then(() => console.log(JSON.stringify([k.hasKernel(k.LAB_BLOCK), k.hasKernel(k.LAB_DENSE)])));`,
  ].join('\n');
  const res = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    env: { ...process.env, LAB_NATIVE_BLOCK: '0', LAB_THREADS: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const [blockOn, denseOn] = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '[]');
  assert.deepEqual([blockOn, denseOn], [false, true], 'block off, the dense layer on');
});

/** A few SigLIP training steps of a small two-tower model (text tower masked) on a fixed batch. */
function smallRun(steps: number) {
  const B = 8;
  const L = 16;
  const tower = { width: 16, depth: 2, heads: 2, mlpRatio: 2 };
  const cfg = {
    image: { imageSize: 32, patch: 8, ...tower, pool: 'map' as const, registers: 1 },
    text: { vocabSize: 120, contextLength: L, ...tower },
    embedDim: 16,
  };
  const model = createModel(cfg, 'siglip', 1, 0);
  const rng = new Rng(3);
  const images = Float32Array.from({ length: B * 3072 }, () => rng.uniform());
  const tokens = new Int32Array(B * L).map((_, i) =>
    i % L === 9 ? 1 : i % L > 9 ? 0 : 3 + rng.int(100),
  );
  const batch = { images, tokens, captions: [], size: B };
  const run = trainLoop(model, { steps, optim: defaultOptim, nextBatch: () => batch, quiet: true });
  const params = Object.values(model.params).map((p) => p.dataSync().slice());
  disposeAdamState(run.adam);
  tf.dispose(Object.values(model.params));
  return { history: run.history, params };
}

test('training steps with the fused block: same losses and weights, flat tensor count', async (t) => {
  await setup();
  if (!hasKernel(LAB_BLOCK)) return t.skip(`no ${LAB_BLOCK} on ${tf.getBackend()}`);
  const before = tf.memory().numTensors;
  const fused = smallRun(5);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  assert.equal(new Set(fused.history.map((r) => r.tensors)).size, 1, 'tensor count over the run');
  const ref = withKernels(1, { block: false }, () => smallRun(5));
  assert.deepEqual(
    fused.history.map((r) => r.loss),
    ref.history.map((r) => r.loss),
  );
  fused.params.forEach((p, i) => {
    assertSameBits(p as Float32Array, ref.params[i] as Float32Array, `param ${i}`);
  });
});
