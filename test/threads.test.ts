/**
 * The native kernels that split their work over threads (attention and its pooling, layer
 * norm, quick GELU, the leading-axis Sum, Llip's mixing and row entropy, AdamW) give
 * the same bits with 1, 2 or 3 threads: each output element is computed by one
 * thread in the order one thread takes. Inputs are sized past LAB_PAR_MIN
 * (matmul.h), so the split really happens. Skipped without the native kernels.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../lib/backend/index';
import {
  ADAMW_MULTI,
  ATTENTION,
  ATTENTION_GRAD,
  ATTENTION_POOL,
  ATTENTION_POOL_GRAD,
  hasKernel,
  LAB_EMBED,
  LAB_EMBED_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
  LLIP_MIX,
  LLIP_MIX_GRAD,
  QUICK_GELU,
  QUICK_GELU_GRAD,
  ROW_ENTROPY,
  runFused,
} from '../lib/backend/kernels';
import { type BlasAddon, loadAddon } from '../lib/backend/native';
import { cores, defaultThreads, shareCores } from '../lib/backend/threads';
import { Rng } from '../lib/rng';
import { setup } from './helpers';

const ROOT = path.resolve(__dirname, '..');
let addon: BlasAddon | null = null;

before(async () => {
  await setup();
  const loaded = loadAddon();
  if (backendInfo()?.native && !('error' in loaded)) addon = loaded.addon;
});

after(() => addon?.setThreads(backendInfo()?.threads ?? 1));

function rand(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()),
    shape,
  );
}

/** Every output of `run` as raw bits, with `threads` threads. */
function bitsWith(threads: number, run: () => tf.Tensor[]): Uint32Array[] {
  addon!.setThreads(threads);
  return tf
    .tidy(() => run())
    .map((t) => {
      const bits = new Uint32Array(t.dataSync().slice().buffer);
      t.dispose();
      return bits;
    });
}

/** Asserts `run` gives the same bits at 1, 2 and 3 threads. */
function sameBits(name: string, run: () => tf.Tensor[]): void {
  const one = bitsWith(1, run);
  for (const threads of [2, 3]) {
    const many = bitsWith(threads, run);
    assert.equal(many.length, one.length);
    many.forEach((bits, i) => {
      const at = bits.findIndex((b, j) => b !== one[i][j]);
      assert.equal(at, -1, `${name}: output ${i} differs at element ${at} with ${threads} threads`);
    });
  }
}

function skip(t: { skip: (why: string) => void }, names: string[]): boolean {
  if (!addon) {
    t.skip('no native kernels');
    return true;
  }
  const missing = names.filter((n) => !hasKernel(n));
  if (missing.length) t.skip(`no ${missing.join(', ')}`);
  return missing.length > 0;
}

test('threads: attention and attention pooling forward and backward, same bits for any thread count', (t) => {
  if (skip(t, [ATTENTION, ATTENTION_GRAD, ATTENTION_POOL, ATTENTION_POOL_GRAD])) return;
  const [B, T, H, dh] = [64, 17, 4, 16]; // 64·17·3·64 floats of qkv, past LAB_PAR_MIN
  const qkv = rand([B * T, 3 * H * dh], 1);
  const mask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9));
  const dy = rand([B * T, H * dh], 2);
  const attrs = { batch: B, heads: H, scale: 0.25 };
  sameBits('attention', () => {
    const [out, probs] = runFused(ATTENTION, { qkv, mask }, attrs);
    return [out, probs, ...runFused(ATTENTION_GRAD, { dy, qkv, probs }, attrs)];
  });
  // attention pooling: kv [B·T, 2D], one query; dq sums over images
  const kv = rand([B * T, 2 * H * dh], 11);
  const q = rand([1, H * dh], 12);
  const dp = rand([B, H * dh], 13);
  sameBits('attention pooling', () => {
    const [out, att] = runFused(ATTENTION_POOL, { kv, q }, attrs);
    return [out, att, ...runFused(ATTENTION_POOL_GRAD, { dy: dp, kv, q, att }, attrs)];
  });
  tf.dispose([qkv, mask, dy, kv, q, dp]);
});

test('threads: layer norm, quick GELU and the leading-axis Sum, same bits for any thread count', (t) => {
  if (skip(t, [LAYER_NORM, LAYER_NORM_GRAD, QUICK_GELU, QUICK_GELU_GRAD])) return;
  const [N, D] = [1100, 72]; // 72 columns: blocks of 48 and 24 at 2 threads, 32/32/8 at 3
  const x = rand([N, D], 3, -3, 3);
  const gamma = rand([D], 4);
  const beta = rand([D], 5);
  const dy = rand([N, D], 6);
  sameBits('layer norm', () => {
    const [y, xhat, rstd] = runFused(LAYER_NORM, { x, gamma, beta }, { eps: 1e-5 });
    return [y, xhat, rstd, ...runFused(LAYER_NORM_GRAD, { dy, xhat, rstd, gamma })];
  });
  sameBits('quick GELU', () => [
    ...runFused(QUICK_GELU, { x }),
    ...runFused(QUICK_GELU_GRAD, { dy, x }),
  ]);
  if (hasKernel(LAB_EMBED)) {
    const ids = tf.tensor1d(
      Array.from({ length: N }, (_, i) => (i * 7) % 50),
      'int32',
    );
    const table = rand([50, D], 14);
    sameBits('embedding', () => [
      ...runFused(LAB_EMBED, { ids, table }),
      ...runFused(LAB_EMBED_GRAD, { dy, ids }, { vocab: 50 }),
    ]);
    tf.dispose([ids, table]);
  }
  sameBits('Sum over the leading axis', () => [
    tf.sum(dy, 0),
    tf.sum(tf.reshape(x, [N / 4, 4 * D]), 0),
  ]);
  tf.dispose([x, gamma, beta, dy]);
});

test("threads: Llip's mixing and row entropy, same bits for any thread count", (t) => {
  if (skip(t, [LLIP_MIX, LLIP_MIX_GRAD, ROW_ENTROPY])) return;
  const [T, B, Bt, M, dh] = [8, 48, 48, 4, 8]; // Φ has 4·48·48·8 floats, past LAB_PAR_MIN
  const keys = rand([T, B, M * dh], 7);
  const values = rand([T, B, M * dh], 8);
  const q = rand([Bt, M * dh], 9);
  const dy = rand([B, Bt, M * dh], 10);
  const attrs = { heads: M, tau: 0.5 };
  sameBits('Llip mixing', () => {
    const [mixed, phi] = runFused(LLIP_MIX, { keys, values, q }, attrs);
    return [
      mixed,
      phi,
      ...runFused(LLIP_MIX_GRAD, { dy, keys, values, q, phi }, attrs),
      ...runFused(ROW_ENTROPY, { x: phi }),
    ];
  });
  tf.dispose([keys, values, q, dy]);
});

test('threads: AdamW over every parameter (and its norms), same bits for any thread count', (t) => {
  if (skip(t, [ADAMW_MULTI])) return;
  const sizes = [5000, 3000, 1200, 64, 7]; // 7 arrays × 9271 floats, past LAB_PAR_MIN
  const inputs: tf.NamedTensorMap = { r0: rand([300], 20) };
  sizes.forEach((n, i) => {
    inputs[`p${i}`] = rand([n], 30 + i);
    inputs[`g${i}`] = rand([n], 40 + i, -3, 3);
    inputs[`m${i}`] = rand([n], 50 + i, -0.1, 0.1);
    inputs[`v${i}`] = rand([n], 60 + i, 0, 0.1);
  });
  const attrs = {
    ...{ lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, bc1: 0.19, bc2: 0.0975 },
    ...{ weightDecay: sizes.map((_, i) => (i % 2 ? 0 : 0.1)), gradClip: 1, rest: 1 },
  };
  sameBits('AdamW', () => runFused(ADAMW_MULTI, inputs, attrs as unknown as tf.NamedAttrMap));
  tf.dispose(Object.values(inputs));
});

test('threads: LAB_THREADS or every core; malformed values are refused', () => {
  assert.equal(defaultThreads({}), cores());
  assert.equal(defaultThreads({ LAB_THREADS: '' }), cores());
  assert.equal(defaultThreads({ LAB_THREADS: '3' }), 3);
  for (const bad of ['0', '-1', '1.5', 'two', '2000']) {
    assert.throws(
      () => defaultThreads({ LAB_THREADS: bad }),
      /LAB_THREADS=.*integer from 1 to 1024/,
    );
  }
});

test('threads: runners give each of their processes its share of the cores', () => {
  const n = cores();
  assert.equal(shareCores(1, {}).LAB_THREADS, String(n));
  assert.equal(shareCores(2, { X: 'y' }).LAB_THREADS, String(Math.max(1, Math.floor(n / 2))));
  assert.equal(shareCores(2, { X: 'y' }).X, 'y');
  assert.equal(shareCores(4 * n, {}).LAB_THREADS, '1', 'never below one thread');
  assert.equal(shareCores(2, { LAB_THREADS: '5' }).LAB_THREADS, '5', 'a hand-set LAB_THREADS wins');
});

test("threads: OpenMP spins briefly in the lab's process unless told otherwise; PyTorch children keep their own", (t) => {
  if (!addon) return t.skip('no native kernels');
  const code = [
    `const { initBackend } = require(${JSON.stringify(path.join(ROOT, 'lib/backend/index'))});`,
    `const { withoutLabOpenMpEnv } = require(${JSON.stringify(path.join(ROOT, 'lib/backend/threads'))});`,
    'const pick = (e) => [e.GOMP_SPINCOUNT ?? null, e.OMP_WAIT_POLICY ?? null];',
    'initBackend().then(() => console.log(JSON.stringify([pick(process.env), pick(withoutLabOpenMpEnv(process.env))])));',
  ].join('\n');
  const seen = (extra: NodeJS.ProcessEnv) => {
    const env = { ...process.env }; // this process set GOMP_SPINCOUNT when it loaded the addon
    delete env.GOMP_SPINCOUNT;
    delete env.OMP_WAIT_POLICY;
    const res = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      env: { ...env, ...extra },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(res.status, 0, res.stderr);
    return JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '[]');
  };
  const [lab, torch] = seen({});
  assert.deepEqual(lab, ['1000', null], 'unset: 1000 spins for the lab');
  assert.deepEqual(torch, [null, null], 'and nothing for PyTorch');
  assert.deepEqual(seen({ OMP_WAIT_POLICY: 'active' }), [
    [null, 'active'],
    [null, 'active'],
  ]);
  assert.deepEqual(seen({ GOMP_SPINCOUNT: '5' }), [
    ['5', null],
    ['5', null],
  ]);
});
