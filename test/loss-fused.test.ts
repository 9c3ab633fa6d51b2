/**
 * The fused SigLIP pair loss and l2normalize (LabSigmoidPairLoss /
 * LabL2Normalize and their gradients, lib/backend/native/lossops.h) against the
 * op-by-op versions they replace: the pair loss against a float64 reference
 * and the op path, its gradients against the op path within float rounding,
 * at B = 1, 7, 256 with logits up to ±50; l2normalize's forward bit for bit and
 * its gradient within rounding; finite differences; one kernel each way; no
 * tensor leak; and the switches (loss: false, LAB_NATIVE_LOSS=0) that keep the
 * op path.
 *
 * The op path's loss is the less exact one, so the fused loss is held to a
 * float64 reference (1e-6 relative) and to the op path only within 1e-3: stock
 * wasm Log1p is log(1 + u) in float32 (log1p(1e-8) = 0), and its Sum adds the
 * B² terms in float32, where the ~1e-5 negatives' terms round against the
 * diagonal's ~10s (up to 4e-4 relative at SigLIP's init, B = 256, measured).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  hasKernel,
  L2_NORMALIZE,
  L2_NORMALIZE_GRAD,
  SIGMOID_PAIR_LOSS,
  SIGMOID_PAIR_LOSS_GRAD,
} from '../lib/backend/kernels';
import { l2normalize } from '../lib/model/ops';
import { siglipLoss, sigmoidPairLoss } from '../lib/objectives/siglip';
import { assertClose, assertSameBits, numericGrad, setup, withKernels } from './helpers';

/** Runs `f` on the op path: the native kernels without the fused loss kernels. */
const opByOp = <T>(f: () => T): T => withKernels(1, { loss: false }, f);

let seed = 17;
const rand = (shape: number[], lo = -1, hi = 1) =>
  tf.randomUniform(shape, lo, hi, 'float32', seed++);

function assertFinite(v: Float32Array, what: string): void {
  const i = v.findIndex((x) => !Number.isFinite(x));
  if (i >= 0) assert.fail(`${what}[${i}] = ${v[i]}`);
}

/** The dy the tests scale the loss by (so the gradients' scaling is checked). */
const DY = 2.5;

/**
 * DY · the SigLIP pair loss of cos [B, B] and its gradients w.r.t. logScale and
 * bias in float64, from the float32 logits t·cos + b both paths compute (an
 * e^-x is only as exact as its x): [loss, dlogScale, dbias].
 */
function pairLossF64(cos: Float32Array, B: number, logScale: number, bias: number): number[] {
  const t = Math.fround(Math.exp(Math.fround(logScale)));
  let [s, dls, db] = [0, 0, 0];
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      const z = i === j ? 1 : -1;
      const logit = Math.fround(Math.fround(t * cos[i * B + j]) + Math.fround(bias));
      const x = z * logit;
      s += Math.log1p(Math.exp(-Math.abs(x))) - Math.min(x, 0);
      const g = (-z * DY) / B / (1 + Math.exp(x)); // ∂/∂logit: −(DY/B) z σ(−x)
      db += g;
      dls += g * t * cos[i * B + j];
    }
  }
  return [(DY * s) / B, dls, db];
}

/**
 * Compares [loss, dlogScale, dbias] with float64 and, loosely, with the op
 * path, whose float32 sums and Log1p are the less exact (file header).
 */
function assertSums(
  fused: Float32Array[],
  exact: number[],
  ref: Float32Array[],
  B: number,
  what: string,
) {
  ['loss', 'dlogScale', 'dbias'].forEach((name, i) => {
    assertClose(fused[i], [exact[i]], `${what} ${name} vs float64`, 1e-30, 1e-6);
    // + the op path's Log1p: up to ~1.2e-7 per pair, all saturated pairs lost
    assertClose(fused[i], ref[i], `${what} ${name} vs op path`, DY * B * 1.2e-7, 1e-3);
  });
}

/** Loss and gradients w.r.t. cos, logScale, bias of DY · sigmoidPairLoss. */
function pairLoss(cos: tf.Tensor, logScale: tf.Tensor, bias: tf.Tensor): Float32Array[] {
  return tf.tidy(() => {
    const f = (c: tf.Tensor, ls: tf.Tensor, b: tf.Tensor) =>
      tf.mul(sigmoidPairLoss(c as tf.Tensor2D, ls as tf.Scalar, b as tf.Scalar), DY) as tf.Scalar;
    const { value, grads } = tf.valueAndGrads(f)([cos, logScale, bias]);
    return [value, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

/** y and the gradient w.r.t. x of Σ l2normalize(x)·w. */
function normalize(x: tf.Tensor, w: tf.Tensor): Float32Array[] {
  return tf.tidy(() => {
    const y = l2normalize(x as tf.Tensor2D);
    const [dx] = tf.grads((xi: tf.Tensor) => tf.sum(tf.mul(l2normalize(xi as tf.Tensor2D), w)))([
      x,
    ]);
    return [y, dx].map((t) => t.dataSync() as Float32Array);
  });
}

// (t, b): the SigLIP init, and logits t·cos + b spanning ±50 (cos in [−1, 1])
const SCALES = [
  [10, -10],
  [50, 0],
  [1, 0.3],
];

test('fused pair loss: loss as float64 gives it, gradients as the op path, up to |logit| 50', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  for (const B of [1, 7, 256]) {
    for (const [scale, b] of SCALES) {
      tf.tidy(() => {
        // cos in [−1, 1] with the diagonal often at the ends (saturated positives)
        const eye = tf.eye(B);
        const cos = tf.add(tf.mul(rand([B, B]), tf.sub(1, eye)), tf.mul(eye, rand([B, B], 0.5, 1)));
        const [ls, bias] = [tf.scalar(Math.log(scale)), tf.scalar(b)];
        const fused = pairLoss(cos, ls, bias);
        const ref = opByOp(() => pairLoss(cos, ls, bias));
        const what = `B ${B}, t ${scale}, b ${b}`;
        ['loss', 'dcos', 'dlogScale', 'dbias'].forEach((name, i) => {
          assertFinite(fused[i], `${what} ${name}`);
        });
        const exact = pairLossF64(cos.dataSync() as Float32Array, B, Math.log(scale), b);
        assertSums([fused[0], fused[2], fused[3]], exact, [ref[0], ref[2], ref[3]], B, what);
        assertClose(fused[1], ref[1], `${what} dcos`, 1e-5, 1e-5);
      });
    }
  }
});

test('fused pair loss: saturated logits (±50 on every pair) stay finite and exact', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  for (const sign of [1, -1]) {
    tf.tidy(() => {
      // every pair right (sign 1: loss ~ B·e^-50) or wrong (sign −1: loss ~ 50·B)
      const B = 7;
      const cos = tf.sub(tf.mul(tf.eye(B), 2 * sign), sign); // +sign diagonal, −sign elsewhere
      const [ls, bias] = [tf.scalar(Math.log(50)), tf.scalar(0)];
      const fused = pairLoss(cos, ls, bias);
      const ref = opByOp(() => pairLoss(cos, ls, bias));
      fused.forEach((v, i) => {
        assertFinite(v, `sign ${sign} output ${i}`);
      });
      // B·e^-50 (the op path's Log1p makes it 0) or 50·B
      const [exact] = pairLossF64(cos.dataSync() as Float32Array, B, Math.log(50), 0);
      assertClose(fused[0], [exact], `sign ${sign} loss vs float64`, 1e-30, 1e-6);
      if (sign < 0) assertClose(fused[0], ref[0], 'loss vs op path', 0, 1e-6);
      for (let i = 1; i < 4; i++)
        assertClose(fused[i], ref[i], `sign ${sign} grad ${i}`, 1e-5, 1e-5);
    });
  }
});

test('fused l2normalize: y equals the op path bit for bit, dx within rounding', async (t) => {
  await setup();
  if (!hasKernel(L2_NORMALIZE)) return t.skip(`no ${L2_NORMALIZE} on ${tf.getBackend()}`);
  for (const [N, D, scale] of [
    [1, 1, 1],
    [7, 5, 1],
    [256, 64, 1],
    [33, 17, 1e3],
    [9, 64, 1e-3],
  ]) {
    tf.tidy(() => {
      // a zero row: y stays 0 and dx finite (r = 1e6)
      const x = tf.concat([tf.mul(rand([N, D]), scale), tf.zeros([1, D])]);
      const w = rand([N + 1, D]);
      const fused = normalize(x, w);
      const ref = opByOp(() => normalize(x, w));
      fused.forEach((v, i) => {
        assertFinite(v, `[${N}, ${D}] output ${i}`);
      });
      assertSameBits(fused[0], ref[0], `[${N}, ${D}] y`);
      // dx ~ 1/‖x‖: tolerance relative to the row scale
      assertClose(fused[1], ref[1], `[${N}, ${D}] dx`, 1e-5 / scale, 1e-5);
    });
  }
});

test('fused SigLIP objective: siglipLoss of raw vectors (l2normalize included) matches the op path', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  for (const B of [1, 7, 256]) {
    tf.tidy(() => {
      const [img, txt] = [rand([B, 32]), rand([B, 32])] as tf.Tensor2D[];
      const [ls, bias] = [tf.scalar(Math.log(10)), tf.scalar(-10)];
      const run = () =>
        tf.tidy(() => {
          const f = (i: tf.Tensor, x: tf.Tensor, l: tf.Tensor, b: tf.Tensor) =>
            tf.mul(
              siglipLoss(
                l2normalize(i as tf.Tensor2D),
                l2normalize(x as tf.Tensor2D),
                l as tf.Scalar,
                b as tf.Scalar,
              ),
              DY,
            ) as tf.Scalar;
          const { value, grads } = tf.valueAndGrads(f)([img, txt, ls, bias]);
          return [value, ...grads].map((g) => g.dataSync() as Float32Array);
        });
      const fused = run();
      const ref = opByOp(run);
      const cos = tf.matMul(l2normalize(img), l2normalize(txt), false, true); // both paths' bits
      const exact = pairLossF64(cos.dataSync() as Float32Array, B, Math.log(10), -10);
      assertSums([fused[0], fused[3], fused[4]], exact, [ref[0], ref[3], ref[4]], B, `B ${B}`);
      assertClose(fused[1], ref[1], `B ${B} dimg`, 1e-5, 1e-5);
      assertClose(fused[2], ref[2], `B ${B} dtxt`, 1e-5, 1e-5);
    });
  }
});

test('fused pair loss and l2normalize: gradients match finite differences', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  tf.tidy(() => {
    const B = 4;
    const [cos, ls, bias] = [rand([B, B]), tf.scalar(Math.log(3)), tf.scalar(-1.5)];
    const [, gc, gl, gb] = pairLoss(cos, ls, bias);
    const loss = (c: tf.Tensor, l: tf.Tensor, b: tf.Tensor) =>
      tf.mul(sigmoidPairLoss(c as tf.Tensor2D, l as tf.Scalar, b as tf.Scalar), DY) as tf.Scalar;
    const numeric = [
      numericGrad((v) => loss(v, ls, bias), cos),
      numericGrad((v) => loss(cos, v, bias), ls),
      numericGrad((v) => loss(cos, ls, v), bias),
    ];
    [gc, gl, gb].forEach((g, i) => {
      assertClose(g, numeric[i], ['dcos', 'dlogScale', 'dbias'][i], 2e-3, 1e-2);
    });
    const [x, w] = [rand([3, 5]), rand([3, 5])];
    const [, gx] = normalize(x, w);
    const nx = numericGrad(
      (v) => tf.sum(tf.mul(l2normalize(v as tf.Tensor2D), w)) as tf.Scalar,
      x,
      1e-3,
    );
    assertClose(gx, nx, 'l2normalize dx', 2e-3, 1e-2);
  });
});

test('fused pair loss and l2normalize: one kernel each way, no tensor leak, the op path without them', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  const [img, txt, ls, bias] = [rand([8, 6]), rand([8, 6]), tf.scalar(2.3), tf.scalar(-10)];
  const step = () =>
    tf.tidy(() => {
      const f = (i: tf.Tensor, x: tf.Tensor, l: tf.Tensor, b: tf.Tensor) =>
        siglipLoss(
          l2normalize(i as tf.Tensor2D),
          l2normalize(x as tf.Tensor2D),
          l as tf.Scalar,
          b as tf.Scalar,
        );
      const { value, grads } = tf.valueAndGrads(f)([img, txt, ls, bias]);
      for (const g of [value, ...grads]) g.dataSync();
    });
  const kernels = async () => {
    const info = await tf.profile(() => {
      step();
      return tf.scalar(0);
    });
    return info.kernels.map((k) => k.name);
  };
  const fused = await kernels();
  const count = (name: string) => fused.filter((k) => k === name).length;
  assert.equal(count(SIGMOID_PAIR_LOSS), 1, `${fused}`);
  assert.equal(count(SIGMOID_PAIR_LOSS_GRAD), 1, `${fused}`);
  assert.equal(count(L2_NORMALIZE), 2, `${fused}`);
  assert.equal(count(L2_NORMALIZE_GRAD), 2, `${fused}`);
  for (const k of ['Log1p', 'Exp', 'Abs', 'Minimum', 'Rsqrt', 'Square', 'Sigmoid'])
    assert.ok(!fused.includes(k), `${k} in ${fused}`);
  step(); // warm
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  const ref = await opByOp(kernels);
  assert.ok(!ref.includes(SIGMOID_PAIR_LOSS) && !ref.includes(L2_NORMALIZE), `${ref}`);
  assert.ok(ref.includes('Log1p') && ref.includes('Rsqrt'), `${ref}`);
  assert.equal(
    opByOp(() => hasKernel(SIGMOID_PAIR_LOSS) || hasKernel(L2_NORMALIZE)),
    false,
  );
  tf.dispose([img, txt, ls, bias]);
});

test('LAB_NATIVE_LOSS=0 switches the fused loss kernels off', async (t) => {
  await setup();
  if (!hasKernel(SIGMOID_PAIR_LOSS)) return t.skip(`no ${SIGMOID_PAIR_LOSS} on ${tf.getBackend()}`);
  const root = path.join(__dirname, '..');
  const code = [
    `const { initBackend } = require(${JSON.stringify(path.join(root, 'lib/backend/index'))});`,
    `const k = require(${JSON.stringify(path.join(root, 'lib/backend/kernels'))});`,
    `initBackend().then(() => console.log(JSON.stringify([k.SIGMOID_PAIR_LOSS, k.SIGMOID_PAIR_LOSS_GRAD, k.L2_NORMALIZE, k.L2_NORMALIZE_GRAD, k.QUICK_GELU].map(k.hasKernel))));`,
  ].join('\n');
  const res = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    env: { ...process.env, LAB_NATIVE_LOSS: '0', LAB_THREADS: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const on = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '[]');
  assert.deepEqual(on, [false, false, false, false, true], 'loss kernels off, the others on');
});
