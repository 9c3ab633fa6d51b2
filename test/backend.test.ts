/**
 * Native OpenBLAS kernels vs a float64 JS reference and the stock wasm kernels.
 * The stock fused bias is wrong with transposes or batch > 1, so bias cases are
 * checked against the reference only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from '../lib/backend/index';
import {
  type BlasAddon,
  type KernelOptions,
  loadAddon,
  nativeKernelsActive,
  registerNativeKernels,
  restoreStockKernels,
} from '../lib/backend/native';
import { attentionPool, embed, layerNorm, multiHeadAttention, quickGelu } from '../lib/model/ops';
import {
  type LlipParams,
  llipForward,
  llipMixQueries,
  mixingEntropy,
} from '../lib/objectives/llip-mix';
import { Rng } from '../lib/rng';
import { numericGrad } from './helpers';

const loaded = loadAddon();
const missing = 'error' in loaded ? loaded.error : null;
const SIZES = [1, 3, 17, 64];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
let seed = 1;

function rand(shape: number[]): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed++);
}

/** Reference op(A[i]) op(B[i]) + bias in float64; a batch of 1 broadcasts. */
function refMatMul(
  a: tf.Tensor,
  b: tf.Tensor,
  ta: boolean,
  tb: boolean,
  bias?: tf.Tensor,
): number[] {
  const [ba, r0, c0] = a.shape as number[];
  const [bb, r1, c1] = b.shape as number[];
  const [m, k, n] = [ta ? c0 : r0, ta ? r0 : c0, tb ? r1 : c1];
  const [av, bv] = [a.dataSync(), b.dataSync()];
  const biasAt = bias ? biasIndexer(bias) : () => 0;
  const out: number[] = [];
  for (let i = 0; i < Math.max(ba, bb); i++) {
    const [oa, ob] = [ba === 1 ? 0 : i * m * k, bb === 1 ? 0 : i * k * n];
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let s = biasAt(i, r, c);
        for (let p = 0; p < k; p++) {
          s += av[oa + (ta ? p * m + r : r * k + p)] * bv[ob + (tb ? c * k + p : p * n + c)];
        }
        out.push(s);
      }
    }
  }
  return out;
}

/** Element (i, r, c) of a bias broadcast against [batch, M, N]. */
function biasIndexer(bias: tf.Tensor) {
  const s = [1, 1, 1, ...bias.shape].slice(-3);
  const v = bias.dataSync();
  return (i: number, r: number, c: number) =>
    v[(s[0] === 1 ? 0 : i) * s[1] * s[2] + (s[1] === 1 ? 0 : r) * s[2] + (s[2] === 1 ? 0 : c)];
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  tol = 1e-4,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * (1 + Math.abs(expected[i])))) {
      assert.fail(`${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Runs `f` with the stock wasm kernels, then puts the native ones back. */
function withStock<T>(f: () => T): T {
  restoreStockKernels();
  try {
    return f();
  } finally {
    registerNativeKernels(1);
  }
}

/** Shapes [batch, rows, cols] of A and B for op(A) [M, K] and op(B) [K, N]. */
function shapes(dims: number[], ta: boolean, tb: boolean, batches: [number, number] = [1, 1]) {
  const [m, k, n] = dims;
  return {
    a: [batches[0], ta ? k : m, ta ? m : k],
    b: [batches[1], tb ? n : k, tb ? k : n],
  };
}

test('initBackend picks wasm + native once and caches', async (t) => {
  const lines: string[] = [];
  t.mock.method(console, 'log', (s: string) => lines.push(s));
  const first = await initBackend({ force: 'wasm' });
  const again = await initBackend({ force: 'cpu' });
  t.mock.restoreAll();
  assert.equal(first, again);
  assert.equal(backendInfo(), first);
  assert.equal(tf.getBackend(), 'wasm');
  assert.equal(first.name, 'wasm');
  assert.equal(first.native, missing === null, first.description);
  assert.ok(lines.length <= 1 && lines.every((l) => l.startsWith('[lab] backend: wasm')));
});

test('addon rejects offsets outside the heap', (t) => {
  if (missing) return t.skip(missing);
  const addon = (loaded as { addon: BlasAddon }).addon;
  const heap = new Float32Array(16);
  assert.throws(
    () => addon.sgemm(heap, 0, 0, 1, 4, 4, 4, 0, 0, 4, 0, 8, -1, 0, 0, 0, 0),
    RangeError,
  );
  assert.throws(() => addon.sumRows(heap, 0, 4, 5, 0), RangeError);
  assert.throws(() => addon.sumCols(heap, 0, 4, 5, 0), RangeError);
  assert.throws(() => addon.sigmoid(heap, 8, 1, 9, 0), RangeError);
  assert.throws(() => addon.softmaxRows(heap, 0, 2, 4, 12), RangeError);
  // copyStrided(heap, rank, src, dst, ...shape, ...srcStrides, ...dstStrides)
  assert.throws(() => addon.copyStrided(heap, 2, 0, 8, 3, 3, 3, 1, 3, 1), RangeError);
  assert.throws(() => addon.copyStrided(heap, 1, 0, 8, 4, -1, 1), RangeError);
  assert.throws(() => addon.copyStrided(heap, 2, 0, 8, 2, 2, 2, 1), RangeError);
  assert.throws(() => addon.copyStrided(heap, 9, 0, 0, ...new Array(27).fill(1)), RangeError);
  // adamwMulti(heap, table [n, p, g, m, v, p', m', v', wd], count, rest, norms, ...hyper)
  const hyper = [1e-3, 0.9, 0.95, 1e-8, 0.1, 0.05, 1];
  const row = (...r: number[]) => new Float64Array(r);
  assert.throws(
    () => addon.adamwMulti(heap, row(2, 0, 2, 4, 6, 8, 10, 15, 0), 1, 0, 0, ...hyper),
    RangeError,
  );
  assert.throws(
    () => addon.adamwMulti(heap, row(2, 0, 2, 4, 6, 8, 10, 12, 0), 1, 0, 14, ...hyper),
    RangeError,
  );
  assert.throws(
    () => addon.adamwMulti(heap, row(2, 0.5, 2, 4, 6, 8, 10, 12, 0), 1, 0, 0, ...hyper),
    RangeError,
  );
  assert.throws(
    () => addon.adamwMulti(heap, row(2, 0, 2, 4, 6, 8, 10, 12), 1, 0, 0, ...hyper),
    RangeError,
  );
  assert.throws(
    () => addon.adamwMulti(heap, row(4, 14, 0, 0, 0, 0, 0, 0, 0), 0, 1, 0, ...hyper),
    RangeError,
  );
  // lixpContext(heap, x, stale, scale, fill, out, attn, k, rn, B, S, D, maskSelf, separate, block)
  assert.throws(
    () => addon.lixpContext(heap, 0, -1, 4, -1, 5, 9, 13, 0, 2, 0, 2, 1, 0, 0),
    RangeError,
  );
  assert.throws(
    () => addon.lixpContext(heap, 0, 12, 4, 15, 5, 0, 0, 0, 2, 3, 2, 1, 0, 0),
    RangeError,
  );
  // lixpContextGrad(heap, dOut, dAttn, x, stale, attn, k, rn, scale, dx, dScale, B, S, D)
  assert.throws(
    () => addon.lixpContextGrad(heap, 0, 4, 8, -1, 12, 0, 0, 0, 14, 0, 2, 0, 2),
    RangeError,
  );
  assert.match(addon.version(), /OpenBLAS/);
});

test('BatchMatMul: all transposes and odd sizes match the reference and stock', (t) => {
  if (missing) return t.skip(missing);
  registerNativeKernels(1);
  for (const [ta, tb] of TRANSPOSES) {
    for (const m of SIZES) {
      for (const dims of [
        [m, 17, 3],
        [3, m, 64],
        [64, 1, m],
      ]) {
        tf.tidy(() => {
          const s = shapes(dims, ta, tb);
          const [a, b] = [rand(s.a), rand(s.b)];
          const what = `matMul ${dims} ta=${ta} tb=${tb}`;
          const got = tf.matMul(a, b, ta, tb).dataSync();
          assertClose(got, refMatMul(a, b, ta, tb), what);
          assertClose(
            got,
            withStock(() => tf.matMul(a, b, ta, tb).dataSync()),
            `${what} vs stock`,
          );
        });
      }
    }
  }
});

test('BatchMatMul: batch broadcast, rank 4 x rank 2, two threads', (t) => {
  if (missing) return t.skip(missing);
  registerNativeKernels(2);
  const batchCases: [number, number][] = [
    [4, 4],
    [1, 4],
    [4, 1],
  ];
  for (const [ta, tb] of TRANSPOSES) {
    for (const batches of batchCases) {
      tf.tidy(() => {
        const s = shapes([17, 5, 3], ta, tb, batches);
        const [a, b] = [rand(s.a), rand(s.b)];
        const got = tf.matMul(a, b, ta, tb);
        assert.deepEqual(got.shape, [4, 17, 3]);
        assertClose(
          got.dataSync(),
          refMatMul(a, b, ta, tb),
          `batches ${batches} ta=${ta} tb=${tb}`,
        );
      });
    }
  }
  tf.tidy(() => {
    const [x, w] = [rand([2, 3, 8, 5]), rand([5, 7])];
    const got = tf.matMul(x, w);
    assert.deepEqual(got.shape, [2, 3, 8, 7]);
    assertClose(
      got.dataSync(),
      refMatMul(x.reshape([6, 8, 5]), w.reshape([1, 5, 7]), false, false),
      'rank 4 x 2',
    );
  });
  registerNativeKernels(1);
});

/** Fused matMul with bias (+ relu) for one transpose/batch case vs the reference. */
function checkFused(ta: boolean, tb: boolean, batches: [number, number], biasShape: number[]) {
  tf.tidy(() => {
    const s = shapes([17, 5, 3], ta, tb, batches);
    const [a, b, bias] = [rand(s.a), rand(s.b), rand(biasShape)];
    const what = `bias ${biasShape} batches ${batches} ta=${ta} tb=${tb}`;
    const opts = { a, b, transposeA: ta, transposeB: tb, bias };
    const linear = tf.fused.matMul(opts);
    assertClose(linear.dataSync(), refMatMul(a, b, ta, tb, bias), what);
    const relu = tf.fused.matMul({ ...opts, activation: 'relu' });
    assertClose(relu.dataSync(), linear.relu().dataSync(), `${what} relu`);
  });
}

test('fused matMul: bias (row, scalar, per-batch) and relu with transposes', (t) => {
  if (missing) return t.skip(missing);
  const batchCases: [number, number][] = [
    [4, 4],
    [4, 1],
    [1, 4],
  ];
  for (const [ta, tb] of TRANSPOSES) {
    for (const batches of batchCases) {
      for (const biasShape of [[3], [1], [17, 3], [4, 17, 3], [17, 1]]) {
        checkFused(ta, tb, batches, biasShape);
      }
    }
  }
});

test('fused matMul: other activations are applied after the native matmul', (t) => {
  if (missing) return t.skip(missing);
  tf.tidy(() => {
    const [a, b, bias] = [rand([2, 5, 4]), rand([2, 3, 4]), rand([3])];
    const base = tf.fused.matMul({ a, b, transposeB: true, bias });
    const alpha = rand([3]);
    const cases: [tf.fused.Activation, tf.Tensor][] = [
      ['sigmoid', base.sigmoid()],
      ['elu', base.elu()],
      ['relu6', base.relu6()],
      ['leakyrelu', base.leakyRelu(0.1)],
      ['prelu', base.prelu(alpha)],
    ];
    for (const [activation, want] of cases) {
      const args = { preluActivationWeights: alpha, leakyreluAlpha: 0.1 };
      const got = tf.fused.matMul({ a, b, transposeB: true, bias, activation, ...args });
      assertClose(got.dataSync(), want.dataSync(), activation);
    }
  });
});

test('Sum over leading axes matches stock; other axes fall back', (t) => {
  if (missing) return t.skip(missing);
  const cases: [number[], number | number[], boolean][] = [
    [[33, 17], 0, false],
    [[4, 5, 6], [0, 1], false],
    [[4, 5, 6], [1, 0], true],
    [[4, 5, 6], -1, false],
    [[4, 5, 6], [0, 2], true],
    [[1, 64], 0, false],
    [[7], 0, false],
  ];
  for (const [shape, axis, keepDims] of cases) {
    tf.tidy(() => {
      const x = rand(shape);
      const got = tf.sum(x, axis, keepDims);
      const want = withStock(() => tf.sum(x, axis, keepDims));
      assert.deepEqual(got.shape, want.shape);
      assertClose(got.dataSync(), want.dataSync(), `sum ${shape} axis ${axis}`, 1e-5);
    });
  }
});

/**
 * A well-conditioned scalar, mean(tanh(A·B + bias) * C), through the fused op
 * (its backward pass runs BatchMatMul and a leading-axis Sum) or plain matMul.
 */
function lossOf(ta: boolean, tb: boolean, weights: tf.Tensor, fused: boolean) {
  return (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
    tf.tidy(() => {
      const y = fused
        ? tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias })
        : tf.matMul(a, b, ta, tb).add(bias);
      return y.tanh().mul(weights).mean() as tf.Scalar;
    });
}

/** Central differences of f at a few coordinates of input `which`. */
function finiteDiff(
  f: (...x: tf.Tensor[]) => tf.Scalar,
  xs: tf.Tensor[],
  which: number,
  eps = 1e-2,
) {
  const base = xs[which].dataSync().slice();
  const picks = [0, base.length >> 1, base.length - 1];
  return picks.map((idx) => {
    const at = (delta: number) => {
      const v = base.slice();
      v[idx] += delta;
      const args = xs.map((x, i) => (i === which ? tf.tensor(v, x.shape) : x));
      return tf.tidy(() => f(...args).dataSync()[0]);
    };
    return { idx, value: (at(eps) - at(-eps)) / (2 * eps) };
  });
}

function checkGrads(ta: boolean, tb: boolean, batches: [number, number], fused: boolean) {
  const s = shapes([6, 5, 4], ta, tb, batches);
  const xs = [rand(s.a), rand(s.b), rand([4])];
  const f = lossOf(ta, tb, rand([Math.max(...batches), 6, 4]), fused);
  const grads = tf.grads(f)(xs);
  xs.forEach((_, which) => {
    const g = grads[which].dataSync();
    for (const { idx, value } of finiteDiff(f, xs, which)) {
      const what = `ta=${ta} tb=${tb} batches=${batches} input ${which}[${idx}]`;
      assert.ok(
        Math.abs(g[idx] - value) <= 1e-2 * Math.abs(value) + 2e-4,
        `${what}: ${g[idx]} vs ${value}`,
      );
    }
  });
  tf.dispose([...xs, ...grads]);
}

test('gradients through native kernels match finite differences', (t) => {
  if (missing) return t.skip(missing);
  for (const [ta, tb] of TRANSPOSES) {
    // Equal batches only: core's matMul gradients do not reduce broadcast batch dims.
    checkGrads(ta, tb, [1, 1], true);
    checkGrads(ta, tb, [3, 3], true);
    checkGrads(ta, tb, [3, 3], false);
  }
});

test('output allocation that grows the wasm heap is handled', (t) => {
  if (missing) return t.skip(missing);
  tf.tidy(() => {
    // [2048, 8192] floats = 64 MiB: allocating it grows the heap inside the kernel.
    const [a, b] = [tf.ones([2048, 1]), tf.fill([1, 8192], 2)];
    const y = tf.matMul(a, b);
    const v = y.dataSync();
    assert.equal(v.length, 2048 * 8192);
    assert.ok(v[0] === 2 && v[v.length - 1] === 2 && v[v.length >> 1] === 2);
    assert.equal(tf.sum(y, 0).dataSync()[8191], 4096);
  });
});

test('no tensors or buffers leak across many native calls', (t) => {
  if (missing) return t.skip(missing);
  const [a, b, bias, alpha] = [rand([2, 8, 8]), rand([2, 8, 8]), rand([8]), rand([8])];
  const before = tf.memory();
  for (let i = 0; i < 200; i++) {
    tf.tidy(() => {
      tf.matMul(a, b, i % 2 === 0, i % 3 === 0);
      tf.fused.matMul({ a, b, bias, activation: 'prelu', preluActivationWeights: alpha });
      tf.sum(a, 0);
    });
  }
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numDataBuffers, before.numDataBuffers);
  tf.dispose([a, b, bias, alpha]);
});

test('restoreStockKernels undoes the registration', (t) => {
  if (missing) return t.skip(missing);
  // With batch > 1 the stock kernel adds the bias wrongly past the first row.
  const rowsOk = () =>
    tf.tidy(() => {
      const [a, b, bias] = [tf.ones([2, 2, 2]), tf.ones([2, 2, 2]), tf.tensor1d([1, 2])];
      const v = tf.fused.matMul({ a, b, bias }).dataSync();
      return v.every((x, i) => x === (i % 2 === 0 ? 3 : 4));
    });
  registerNativeKernels(1);
  assert.ok(nativeKernelsActive());
  assert.ok(rowsOk());
  restoreStockKernels();
  assert.ok(!nativeKernelsActive());
  assert.ok(!rowsOk(), 'stock kernel is back (and still wrong)');
  registerNativeKernels(1);
  assert.ok(rowsOk());
});

/** Native vs stock values of `f` and of its gradient w.r.t. every input. */
function checkVsStock(
  what: string,
  f: (...x: tf.Tensor[]) => tf.Tensor,
  xs: tf.Tensor[],
  tol = 1e-5,
) {
  tf.tidy(() => {
    const dy = rand(f(...xs).shape);
    const loss = (...x: tf.Tensor[]) => tf.sum(tf.mul(f(...x), dy)) as tf.Scalar;
    const run = () => ({
      y: f(...xs).dataSync(),
      g: tf
        .grads(loss)(xs)
        .map((g) => g.dataSync()),
    });
    const native = run();
    const stockOut = withStock(run);
    assertClose(native.y, stockOut.y, `${what} value`, tol);
    native.g.forEach((g, i) => {
      assertClose(g, stockOut.g[i], `${what} grad ${i}`, tol);
    });
  });
}

test('Sigmoid: values (with extremes) and gradients match stock', (t) => {
  if (missing) return t.skip(missing);
  const extremes = tf.tensor1d([-1e4, -100, -88, -30, -1e-8, 0, 1e-8, 30, 88, 100, 1e4]);
  checkVsStock('sigmoid extremes', (x) => tf.sigmoid(x), [extremes]);
  for (const shape of [[1], [7], [33, 17], [2, 3, 129]]) {
    checkVsStock(`sigmoid ${shape}`, (x) => tf.sigmoid(tf.mul(x, 12)), [rand(shape)]);
  }
  tf.tidy(() => assert.ok(Number.isNaN(tf.sigmoid(tf.tensor1d([Number.NaN])).dataSync()[0])));
});

test('Add: same shapes natively (split over threads), broadcasts through stock; bits as stock', (t) => {
  if (missing) return t.skip(missing);
  const shapes: [number[], number[]][] = [
    [[7], [7]],
    [
      [300, 257],
      [300, 257],
    ], // past LAB_PAR_MIN: split over threads
    [
      [4, 1, 5],
      [4, 1, 5],
    ],
    [[6, 5], [5]], // broadcasts: the stock kernel
    [
      [3, 1],
      [1, 4],
    ],
  ];
  for (const [sa, sb] of shapes) {
    // exact where shapes match; a broadcast's gradient sums through the native Sum (in double)
    const tol = sa.join() === sb.join() ? 0 : 1e-6;
    checkVsStock(`add ${sa} + ${sb}`, (a, b) => tf.add(a, b), [rand(sa), rand(sb)], tol);
  }
  tf.tidy(() => {
    const i = tf.add(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3, 4], 'int32'));
    assert.deepEqual([i.dtype, ...i.dataSync()], ['int32', 4, 6], 'int32 through stock');
  });
});

test('Softmax over the last axis: values and gradients match stock', (t) => {
  if (missing) return t.skip(missing);
  for (const shape of [[5], [3, 1], [4, 7], [6, 9, 33], [2, 3, 4, 16]]) {
    checkVsStock(`softmax ${shape}`, (x) => tf.softmax(tf.mul(x, 20)), [rand(shape)]);
  }
  // An additive causal mask as the text tower uses (-1e9 above the diagonal).
  const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([8, 8]), -1, 0)), -1e9);
  checkVsStock('masked softmax', (x) => tf.softmax(tf.add(x, mask)), [rand([3, 8, 8])]);
  tf.tidy(() => {
    const y = tf.softmax(tf.tensor2d([[1000, 0, -1000]])).dataSync();
    assertClose(y, [1, 0, 0], 'softmax large logits');
    // A masked logit gets exactly zero weight (no 1e-38 that turns into denormals downstream).
    const masked = tf.softmax(tf.tensor2d([[0.5, -1e9, 0.25]])).dataSync();
    assert.equal(masked[1], 0);
    assert.equal(tf.sigmoid(tf.tensor1d([-1e9])).dataSync()[0], 0);
  });
});

test('Sum over trailing axes: values and gradients match stock', (t) => {
  if (missing) return t.skip(missing);
  const cases: [number[], number | number[], boolean][] = [
    [[33, 17], 1, false],
    [[33, 17], -1, true],
    [[4, 5, 6], [1, 2], false],
    [[4, 5, 6], [2, 1], true],
    [[64, 9, 13], -1, true],
    [[3, 1], 1, false],
  ];
  for (const [shape, axis, keepDims] of cases) {
    checkVsStock(`sum ${shape} axis ${axis}`, (x) => tf.sum(x, axis, keepDims), [rand(shape)]);
  }
});

test('quick GELU and layer norm (sigmoid, trailing sums) match stock with gradients', (t) => {
  if (missing) return t.skip(missing);
  checkVsStock('quickGelu', (x) => quickGelu(tf.mul(x, 4)), [rand([64, 48])]);
  const ln = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D);
  checkVsStock('layerNorm', ln, [rand([64, 48]), rand([48]), rand([48])], 1e-4);
});

/** Runs `f` with every native kernel but the fused attention (or `off`), then puts the full set back. */
function withoutAttention<T>(f: () => T, off: KernelOptions = { attention: false }): T {
  restoreStockKernels();
  registerNativeKernels(1, off);
  try {
    return f();
  } finally {
    restoreStockKernels();
    registerNativeKernels(1);
  }
}

/** Additive causal mask [T, T] as the text tower builds it. */
function causal(T: number): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? -1e9 : 0)),
    [T, T],
  );
}

test('fused attention: values and gradients match the op-by-op version (odd sizes, masks)', (t) => {
  if (missing) return t.skip(missing);
  // [B, T, heads, dh, masked]
  const cases: [number, number, number, number, boolean][] = [
    [1, 1, 1, 1, false],
    [3, 5, 2, 3, false],
    [2, 7, 3, 5, true],
    [2, 17, 4, 16, true],
    [4, 16, 4, 16, false],
    [2, 33, 2, 32, true],
  ];
  for (const [B, T, H, dh, masked] of cases) {
    tf.tidy(() => {
      const mask = masked ? causal(T) : null;
      const f = (x: tf.Tensor) => multiHeadAttention(x as tf.Tensor2D, B, H, mask);
      const qkv = tf.mul(rand([B * T, 3 * H * dh]), 2); // logits of a few units: a peaked softmax
      const dy = rand([B * T, H * dh]);
      const loss = (x: tf.Tensor) => tf.sum(tf.mul(f(x), dy)) as tf.Scalar;
      const run = () => ({ y: f(qkv).dataSync(), g: tf.grad(loss)(qkv).dataSync() });
      const fused = run();
      const ops = withoutAttention(run);
      const what = `attention B${B} T${T} H${H} dh${dh}${masked ? ' masked' : ''}`;
      assertClose(fused.y, ops.y, `${what} value`, 1e-5);
      assertClose(fused.g, ops.g, `${what} grad`, 1e-5);
      // and against the stock wasm kernels (the CI path)
      const stockOut = withStock(run);
      assertClose(fused.y, stockOut.y, `${what} value vs stock`, 1e-5);
      assertClose(fused.g, stockOut.g, `${what} grad vs stock`, 1e-5);
    });
  }
});

test('fused attention pooling: values and both gradients match the op-by-op version and finite differences', (t) => {
  if (missing) return t.skip(missing);
  // [B, T, heads, dh]
  const cases: [number, number, number, number][] = [
    [1, 1, 1, 1],
    [3, 5, 2, 3],
    [2, 7, 3, 5],
    [4, 16, 4, 16],
    [2, 33, 2, 32],
  ];
  for (const [B, T, H, dh] of cases) {
    tf.tidy(() => {
      const D = H * dh;
      const kv = tf.mul(rand([B * T, 2 * D]), 2); // logits of a few units: a peaked softmax
      const q = rand([1, D]);
      const dy = rand([B, D]);
      const loss = (x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(attentionPool(x as tf.Tensor2D, y as tf.Tensor2D, B, H), dy)) as tf.Scalar;
      const run = () => {
        const [gkv, gq] = tf.grads(loss)([kv, q]);
        return {
          y: attentionPool(kv as tf.Tensor2D, q as tf.Tensor2D, B, H).dataSync(),
          gkv: gkv.dataSync(),
          gq: gq.dataSync(),
        };
      };
      const fused = run();
      const ops = withoutAttention(run);
      const what = `attention pooling B${B} T${T} H${H} dh${dh}`;
      assertClose(fused.y, ops.y, `${what} value`, 1e-5);
      assertClose(fused.gkv, ops.gkv, `${what} dkv`, 1e-5);
      assertClose(fused.gq, ops.gq, `${what} dq`, 1e-5);
      if (B * T * D <= 200) {
        // independent of both implementations: central differences of the fused loss
        assertClose(
          fused.gkv,
          numericGrad((x) => loss(x, q), kv),
          `${what} dkv vs FD`,
          1e-2,
        );
        assertClose(
          fused.gq,
          numericGrad((y) => loss(kv, y), q),
          `${what} dq vs FD`,
          1e-2,
        );
      }
    });
  }
});

test('embedding lookup: rows and the table gradient match the one-hot matmul (repeats, ids out of range)', (t) => {
  if (missing) return t.skip(missing);
  const cases: [number, number, number][] = [
    [1, 2, 1], // tf.oneHot needs a depth of 2 or more
    [7, 5, 3],
    [4096, 113, 64], // the text tower's lookup on the `lab` preset
  ];
  for (const [n, V, D] of cases) {
    tf.tidy(() => {
      const rng = new Rng(n + V);
      const ids = tf.tensor1d(
        Array.from({ length: n }, (_, i) =>
          i % 11 === 5 ? V + 2 : i % 13 === 7 ? -1 : rng.int(V),
        ),
        'int32',
      );
      const table = rand([V, D]);
      const dy = rand([n, D]);
      const loss = (x: tf.Tensor) =>
        tf.sum(tf.mul(embed(ids as tf.Tensor1D, x as tf.Tensor2D), dy)) as tf.Scalar;
      const run = () => ({
        y: embed(ids as tf.Tensor1D, table as tf.Tensor2D).dataSync(),
        g: tf.grad(loss)(table).dataSync(),
      });
      const fused = run();
      const ops = withoutAttention(run, { embed: false });
      assertClose(fused.y, ops.y, `embed n${n} V${V} D${D} rows`, 0);
      assertClose(fused.g, ops.g, `embed n${n} V${V} D${D} table grad`, 1e-5); // sums of ~36 rows in another order
    });
  }
});

test('fused attention: registered with the fused set, off with attention: false', (t) => {
  if (missing) return t.skip(missing);
  assert.ok(tf.getKernel('LabAttention', 'wasm'), 'LabAttention registered');
  withoutAttention(() => {
    assert.equal(tf.getKernel('LabAttention', 'wasm'), undefined);
    assert.ok(tf.getKernel('LabLayerNorm', 'wasm'), 'the other fused kernels stay');
  });
  assert.ok(tf.getKernel('LabAttentionGrad', 'wasm'), 'back after the switch');
});

test('fused Llip mixing and entropy: loss, Φ, entropy and every gradient match the op-by-op version', (t) => {
  if (missing) return t.skip(missing);
  // [B, Bt (queries; the loss uses B), T tokens, width, E, heads, norm]
  const cases: [number, number, number, number, number, number, boolean][] = [
    [1, 1, 1, 4, 4, 1, false],
    [5, 3, 3, 6, 6, 2, false],
    [6, 7, 17, 8, 24, 3, true],
    [8, 5, 32, 16, 64, 8, false],
    [4, 9, 5, 12, 40, 2, true],
  ];
  for (const [B, Bt, T, w, E, M, normed] of cases) {
    tf.tidy(() => {
      const ln = (): [tf.Tensor1D, tf.Tensor1D] => [
        tf.add(rand([E]), 1) as tf.Tensor1D,
        rand([E]) as tf.Tensor1D,
      ];
      const tokens = tf.mul(rand([B, T, w]), 2) as tf.Tensor3D;
      const g = rand([B, 10]) as tf.Tensor2D;
      const zt = rand([B, E]) as tf.Tensor2D;
      const [wk, wv, wq, wo] = [rand([T, w, E]), rand([T, w, E]), rand([10, E]), rand([E, E])];
      const norms = normed ? { kNorm: ln(), qNorm: ln(), vNorm: ln() } : {};
      const cfg = { heads: M, tau: 0.7 };
      const params = (x: tf.Tensor[]): LlipParams => ({
        wk: x[1] as tf.Tensor3D,
        wv: x[2] as tf.Tensor3D,
        wq: x[3] as tf.Tensor2D,
        wo: x[4] as tf.Tensor2D,
        ...norms,
        logScale: tf.scalar(1.5),
        bias: tf.scalar(-2),
      });
      const xs = [tokens, wk, wv, wq, wo, g, zt];
      const loss = (...x: tf.Tensor[]) =>
        llipForward(x[0] as tf.Tensor3D, x[5] as tf.Tensor2D, x[6] as tf.Tensor2D, params(x), cfg)
          .loss;
      const q = rand([Bt, E]) as tf.Tensor2D;
      const run = () => {
        const { loss: l, phi } = llipForward(tokens, g, zt, params(xs), cfg);
        return {
          loss: l.dataSync(),
          phi: phi.dataSync(),
          entropy: mixingEntropy(phi).dataSync(),
          queries: llipMixQueries(tokens, q, params(xs), cfg).dataSync(), // Bt ≠ B
          g: tf
            .grads(loss)(xs)
            .map((d) => d.dataSync()),
        };
      };
      const fused = run();
      const ops = withoutAttention(run, { llip: false });
      const what = `llip B${B} Bt${Bt} T${T} E${E} M${M}${normed ? ' norm' : ''}`;
      assertClose(fused.loss, ops.loss, `${what} loss`, 1e-5);
      assertClose(fused.phi, ops.phi, `${what} phi`, 1e-5);
      assertClose(fused.entropy, ops.entropy, `${what} entropy`, 1e-5);
      assertClose(fused.queries, ops.queries, `${what} llipMixQueries`, 1e-5);
      fused.g.forEach((d, i) => {
        assertClose(d, ops.g[i], `${what} grad ${i}`, 1e-4);
      });
    });
  }
});

/** Data movement must be exact: native and stock results compared bit for bit, gradients too. */
function checkCopyVsStock(
  what: string,
  f: (...x: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  xs: tf.Tensor[],
) {
  tf.tidy(() => {
    const outs = () => [f(...xs)].flat();
    const dys = outs().map((y) => rand(y.shape));
    const loss = (...x: tf.Tensor[]) =>
      tf.addN([f(...x)].flat().map((y, i) => tf.sum(tf.mul(y, dys[i])))) as tf.Scalar;
    const run = () => ({
      y: outs().map((y) => [y.shape, Array.from(y.dataSync())]),
      g: tf
        .grads(loss)(xs)
        .map((g) => Array.from(g.dataSync())),
    });
    const native = run();
    const stockOut = withStock(run);
    assert.deepEqual(native.y, stockOut.y, `${what} value`);
    assert.deepEqual(native.g, stockOut.g, `${what} grad`);
  });
}

test('Transpose, Slice, SplitV, Concat: native equals stock exactly, with gradients', (t) => {
  if (missing) return t.skip(missing);
  const perms: [number[], number[]][] = [
    [
      [7, 5],
      [1, 0],
    ],
    [
      [64, 48],
      [1, 0],
    ],
    [
      [33, 17],
      [1, 0],
    ],
    [
      [4, 17, 4, 16],
      [0, 2, 1, 3],
    ], // split heads
    [
      [2, 3, 40, 20],
      [0, 3, 2, 1],
    ],
    [
      [2, 1, 5, 1, 3],
      [4, 3, 2, 1, 0],
    ],
    [[6], [0]],
  ];
  for (const [shape, perm] of perms) {
    checkCopyVsStock(`transpose ${shape} ${perm}`, (x) => tf.transpose(x, perm), [rand(shape)]);
  }
  const slices: [number[], number[], number[]][] = [
    [
      [64, 192],
      [0, 64],
      [64, 64],
    ],
    [
      [5, 7, 9],
      [1, 2, 3],
      [3, -1, 4],
    ],
    [
      [5, 7, 9],
      [2, 0, 0],
      [1, 7, 9],
    ], // contiguous
    [[10], [3], [0]], // empty
  ];
  for (const [shape, begin, size] of slices) {
    checkCopyVsStock(`slice ${shape} ${begin} ${size}`, (x) => tf.slice(x, begin, size), [
      rand(shape),
    ]);
  }
  checkCopyVsStock('split qkv', (x) => tf.split(x, 3, 1), [rand([68, 192])]);
  checkCopyVsStock('split sizes', (x) => tf.split(x, [2, 0, -1], 2), [rand([3, 4, 9])]);
  checkCopyVsStock('split axis 0', (x) => tf.split(x, 2, 0), [rand([8, 5])]);
  checkCopyVsStock('concat axis 1', (a, b) => tf.concat([a, b], 1), [rand([9, 4]), rand([9, 7])]);
  checkCopyVsStock('concat axis 0', (a, b) => tf.concat([a, b], 0), [
    rand([2, 3, 5]),
    rand([4, 3, 5]),
  ]);
  checkCopyVsStock('concat 3 inputs', (a, b, c) => tf.concat([a, b, c], -1), [
    rand([2, 3, 1]),
    rand([2, 3, 6]),
    rand([2, 3, 2]),
  ]);
  checkCopyVsStock('concat with empty', (a, b) => tf.concat([a, b], 0), [
    rand([0, 4]),
    rand([3, 4]),
  ]);
  tf.tidy(() => {
    // int32 falls back to the stock kernel and still works.
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    assert.deepEqual(Array.from(tf.transpose(x).dataSync()), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(tf.split(x, 3, 1)[2].arraySync(), [[3], [6]]);
  });
});

test('matmuls survive a storm of signals (oneDNN heap-corruption guard)', (t) => {
  if (missing) return t.skip(missing);
  const script = path.join(__dirname, 'fixtures', 'signal-stress.ts');
  const res = spawnSync(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, SECS: '8' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const tail = `${res.stderr ?? ''}`.split('\n').slice(-4).join('\n');
  assert.equal(res.status, 0, `signal stress exited ${res.status} (${res.signal ?? ''}): ${tail}`);
  const { pairs, signals } = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '{}');
  assert.ok(pairs > 0 && signals > 100, `${pairs} matmul pairs, ${signals} signals`);
});

test('Cast to the same dtype shares the buffer; real conversions still convert', (t) => {
  if (missing) return t.skip(missing);
  const x = tf.tensor1d([1.5, -2.25, 3]);
  const before = tf.memory().numDataBuffers;
  const y = tf.cast(x, 'float32');
  assert.equal(tf.memory().numDataBuffers, before, 'a same-dtype cast allocates no buffer');
  x.dispose(); // the shared buffer lives on through y's reference
  assert.deepEqual(Array.from(y.dataSync()), [1.5, -2.25, 3]);
  y.dispose();
  tf.tidy(() => {
    const i = tf.cast(tf.tensor1d([1.7, -2.2, 3]), 'int32');
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(Array.from(i.dataSync()), [1, -2, 3]);
  });
  // the gradient of a product casts its other operand: same values as stock
  checkCopyVsStock('mul through cast', (a, b) => tf.mul(a, b), [rand([6, 5]), rand([6, 5])]);
});
