/**
 * bench/floor.ts reads a step's matrix products off the profiled kernels' shapes.
 * Checked two ways: hand-made kernel records give the products the kernels'
 * contracts (lib/backend/kernels.ts) say they run, and over a whole profiled step
 * their FLOPs agree with the analytic count of bench/setup.ts `stepFlops`, an
 * independent derivation from the model config.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { productsOf, stepProducts } from '../bench/floor';
import { labStep } from '../bench/profile';
import { benchCases, benchModel, benchOptim, fixedBatches, stepFlops } from '../bench/setup';
import { initBackend } from '../lib/backend/index';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';
import { createWorld } from '../lib/data/world';
import { createAdamState } from '../lib/train/optim';

const rec = (name: string, inputShapes: number[][], outputShapes: number[][]) => ({
  name,
  inputShapes,
  outputShapes,
});
const flops = (ps: { batch: number; m: number; n: number; k: number }[]) =>
  ps.reduce((s, p) => s + 2 * p.batch * p.m * p.n * p.k, 0);

test('floor: each kernel record gives the products its contract runs', () => {
  const dense = productsOf(rec('LabDense', [[10, 3], [3, 7], [7]], [[10, 7]]));
  assert.deepEqual(dense, [{ batch: 1, m: 10, n: 7, k: 3, ta: false, tb: false }]);
  const grad = productsOf(
    rec(
      'LabDenseGrad',
      [
        [10, 7],
        [10, 3],
        [3, 7],
      ],
      [[10, 3], [3, 7], [7]],
    ),
  );
  assert.deepEqual(grad, [
    { batch: 1, m: 10, n: 3, k: 7, ta: false, tb: true }, // dx = dy · wᵀ
    { batch: 1, m: 3, n: 7, k: 10, ta: true, tb: false }, // dw = xᵀ · dy
  ]);
  // a transposed left operand [5, 4, 9] (k = 4) times [5, 4, 6]: out [5, 9, 6]
  const bmm = productsOf(
    rec(
      'BatchMatMul',
      [
        [5, 4, 9],
        [5, 4, 6],
      ],
      [[5, 9, 6]],
    ),
  );
  assert.deepEqual(bmm, [{ batch: 5, m: 9, n: 6, k: 4, ta: false, tb: false }]);
  // attention: B = 3 images of T = 4 tokens, D = 8, H = 2 heads (dh = 4)
  const fwd = productsOf(
    rec(
      'LabAttention',
      [[12, 24]],
      [
        [12, 8],
        [6, 4, 4],
      ],
    ),
  );
  assert.equal(flops(fwd), 2 * (2 * 6 * 4 * 4 * 4)); // Q·Kᵀ and P·V
  const bwd = productsOf(
    rec(
      'LabAttentionGrad',
      [
        [12, 8],
        [12, 24],
        [6, 4, 4],
      ],
      [[12, 24]],
    ),
  );
  assert.equal(flops(bwd), 4 * (2 * 6 * 4 * 4 * 4));
  assert.deepEqual(productsOf(rec('LabLayerNorm', [[12, 8]], [[12, 8]])), []);
});

test("floor: a profiled step's products add up to the analytic FLOP count", async () => {
  await initBackend();
  const world = createWorld({ trainScenes: 64, valScenes: 16, testScenes: 16 });
  const c = benchCases(world, true).find((x) => x.key === 'smoke-siglip');
  assert.ok(c);
  const model = benchModel(c, world);
  const [batch] = fixedBatches(world, c.batch, 1);
  const adam = createAdamState(model.params);
  restoreStockKernels();
  registerNativeKernels(1, { block: false }); // the whole-block kernel hides its products' shapes
  labStep(model, batch, adam, 1, 10, benchOptim());
  const info = await tf.profile(() => {
    labStep(model, batch, adam, 2, 10, benchOptim());
    return tf.scalar(0);
  });
  tf.dispose(info.result as tf.Tensor);
  restoreStockKernels();
  registerNativeKernels(1);
  assert.throws(
    () => productsOf(rec('LabBlock', [[12, 8]], [[12, 8]])),
    /profile with the block kernel off/,
  );
  const ps = stepProducts(info.kernels as never);
  const measured = ps.reduce((s, { product: p, calls }) => s + calls * flops([p]), 0);
  const analytic = stepFlops(c.model, c.batch, c.objective);
  const ratio = measured / analytic;
  assert.ok(ratio > 0.9 && ratio < 1.1, `products ${measured} vs stepFlops ${analytic}: ×${ratio}`);
});
