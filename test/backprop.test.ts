/**
 * lib/backend/backprop.ts: the backprop that frees as it goes gives the same bits
 * as TF.js's own, leaks nothing, and lowers the peak of a training step.
 * Compared on the bench's smoke models (every objective), whole batch and chunked,
 * against the stock engine.gradients (uninstallBackprop) in the same process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { peakTensorBytes } from '../bench/profile';
import { benchCases, benchModel, fixedBatches } from '../bench/setup';
import { installBackprop, uninstallBackprop } from '../lib/backend/backprop';
import { initBackend } from '../lib/backend/index';
import {
  nativeKernelsActive,
  registerNativeKernels,
  restoreStockKernels,
} from '../lib/backend/native';
import { createWorld } from '../lib/data/world';
import { disposeModel } from '../lib/objectives/model';
import { lossAndGrads } from '../lib/train/step';

const world = createWorld({ trainScenes: 64, valScenes: 16, testScenes: 16 });
const cases = benchCases(world, true);
const [batch] = fixedBatches(world, 32, 1);

/** Loss and every gradient's bits for one case, with the given backprop. */
function gradBits(
  key: string,
  early: boolean,
  chunk = 0,
): { loss: number; grads: Map<string, Float32Array> } {
  if (early) installBackprop();
  else uninstallBackprop();
  const c = cases.find((x) => x.key === key);
  assert.ok(c, key);
  const model = benchModel(c, world);
  try {
    const r = lossAndGrads(model, batch, chunk);
    const grads = new Map(
      Object.entries(r.grads).map(([n, g]) => [n, g.dataSync() as Float32Array]),
    );
    const loss = r.loss.dataSync()[0];
    tf.dispose([r.loss, r.metrics.values, ...Object.values(r.grads), ...Object.values(r.next)]);
    return { loss, grads };
  } finally {
    disposeModel(model);
    installBackprop();
  }
}

function assertSameBits(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: same parameters`);
  for (const [n, x] of a) {
    const y = b.get(n)!;
    const xi = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const yi = new Uint32Array(y.buffer, y.byteOffset, y.length);
    const bad = xi.findIndex((v, i) => v !== yi[i]);
    assert.equal(bad, -1, `${what}: ${n}[${bad}] ${x[bad]} vs ${y[bad]}`);
  }
}

test('backprop: every objective gives the bits of TF.js backprop, whole batch and chunked', async () => {
  await initBackend();
  for (const c of cases)
    for (const chunk of [0, 12]) {
      const what = `${c.key}${chunk ? ` chunk ${chunk}` : ''}`;
      const stock = gradBits(c.key, false, chunk);
      const ours = gradBits(c.key, true, chunk);
      assert.ok(Number.isFinite(stock.loss), what);
      assert.equal(ours.loss, stock.loss, `${what}: loss`);
      assert.ok(stock.grads.size > 10, `${what}: ${stock.grads.size} gradients`);
      assertSameBits(ours.grads, stock.grads, what);
    }
});

/** Peak tensor bytes of one step with TF.js's backprop and with ours, the whole-block kernel on or off. */
function stepPeaks(block: boolean): Record<string, number> {
  const native = nativeKernelsActive();
  if (native) {
    restoreStockKernels();
    registerNativeKernels(1, { block });
  }
  const c = cases.find((x) => x.key === 'smoke-siglip')!;
  const model = benchModel(c, world);
  const step = () => {
    const r = lossAndGrads(model, batch);
    tf.dispose([r.loss, r.metrics.values, ...Object.values(r.grads), ...Object.values(r.next)]);
  };
  const peaks: Record<string, number> = {};
  for (const early of [false, true]) {
    if (early) installBackprop();
    else uninstallBackprop();
    step(); // warm-up
    const before = tf.memory().numTensors;
    peaks[String(early)] = peakTensorBytes(step);
    assert.equal(tf.memory().numTensors, before, `early=${early}: tensors leaked`);
  }
  installBackprop();
  disposeModel(model);
  if (native) {
    restoreStockKernels();
    registerNativeKernels(1);
  }
  return peaks;
}

test('backprop: no tensor outlives a step, and the peak of a step drops', async () => {
  await initBackend();
  // op by op, each node's saved tensors and gradients are freed as soon as it is done
  const ops = stepPeaks(false);
  assert.ok(ops.true < 0.75 * ops.false, `peak ${ops.true} B vs TF.js's ${ops.false} B`);
  // a fused block keeps its saved buffer until its gradient node is done: a smaller cut
  const fused = stepPeaks(true);
  assert.ok(
    fused.true < 0.9 * fused.false,
    `fused block: peak ${fused.true} B vs ${fused.false} B`,
  );
});

test('backprop: higher-order gradients, a caller-owned dy, and the error for an unrelated x', async () => {
  await initBackend();
  installBackprop();
  const x = tf.scalar(2);
  const d2 = tf.grad(tf.grad((v: tf.Tensor) => v.pow(3))); // d²(x³)/dx² = 6x
  assert.equal(d2(x).dataSync()[0], 12);
  const dy = tf.tensor1d([1, 10]);
  const g = tf.grad((v: tf.Tensor) => v.square())(tf.tensor1d([3, 4]), dy); // 2x·dy
  assert.deepEqual(Array.from(g.dataSync()), [6, 80]);
  assert.ok(!dy.isDisposed, 'the caller owns dy');
  const unrelated = tf.scalar(1);
  assert.throws(
    () => tf.grads(() => tf.scalar(3))([unrelated]),
    /Cannot compute gradient of y=f\(x\)/,
  );
});
