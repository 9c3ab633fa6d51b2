/**
 * LIxP's fused contextualiser (LabLixpContext / LabLixpContextGrad, lib/backend/native/lixpops.h)
 * against the op-by-op lixpContext it replaces: X̂ctx, the attention and the gradients
 * w.r.t. the embeddings and log τctx, under every mask it covers (self, halves, blocks,
 * stale rows) and with the residual; the other switches must keep the op-by-op path.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { hasKernel, LIXP_CONTEXT } from '../lib/backend/kernels';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';
import { LIXP_PAPER } from '../lib/objectives/lixp';
import {
  type ContextSwitches,
  lixpContext,
  type StaleMemory,
} from '../lib/objectives/lixp-context';
import { assertClose, setup } from './helpers';

/** Runs `f` with the native kernels but not the fused contextualiser, then puts the full set back. */
function opByOp<T>(f: () => T): T {
  restoreStockKernels();
  registerNativeKernels(1, { lixp: false });
  try {
    return f();
  } finally {
    restoreStockKernels();
    registerNativeKernels(1);
  }
}

/** Runs `f` on the stock wasm kernels (the CI path), then puts the native ones back. */
function stock<T>(f: () => T): T {
  restoreStockKernels();
  try {
    return f();
  } finally {
    registerNativeKernels(1);
  }
}

let seed = 11;
const rand = (shape: number[], scale = 1) =>
  tf.mul(tf.randomUniform(shape, -1, 1, 'float32', seed++), scale) as tf.Tensor2D;

interface Case {
  B: number;
  D: number;
  s: Partial<ContextSwitches>;
  stale?: [number, number]; // rows, fill
}

/** Values and gradients (embeddings, log τctx) of X̂ctx and the attention under `c`. */
function evaluate(c: Case, x: tf.Tensor2D, logTau: tf.Scalar, stale?: StaleMemory) {
  const s = { ...LIXP_PAPER, ...c.s } as ContextSwitches;
  const M = c.B + (stale ? stale.rows.shape[0] : 0);
  const dy = tf.randomUniform([c.B, c.D], -1, 1, 'float32', 1);
  const dA = tf.randomUniform([c.B, M], -1, 1, 'float32', 2);
  const run = (withAttention: boolean) => {
    const f = (xi: tf.Tensor, lt: tf.Tensor) => {
      const { attention, xCtx } = lixpContext(xi as tf.Tensor2D, lt as tf.Scalar, s, { stale });
      const y = tf.sum(tf.mul(xCtx, dy));
      return (withAttention ? tf.add(y, tf.sum(tf.mul(attention, dA))) : y) as tf.Scalar;
    };
    const [gx, gt] = tf.grads(f)([x, logTau]);
    return [gx.dataSync(), gt.dataSync()];
  };
  const out = lixpContext(x, logTau, s, { stale });
  const [gx, gt] = run(true);
  const [gx0, gt0] = run(false);
  return { xCtx: out.xCtx.dataSync(), attention: out.attention.dataSync(), gx, gt, gx0, gt0 };
}

const CASES: Case[] = [
  { B: 1, D: 3, s: { maskSelf: false } },
  { B: 5, D: 3, s: {} },
  { B: 16, D: 16, s: { maskSelf: false } },
  { B: 17, D: 24, s: { context: 'separate', maskSelf: false } },
  { B: 16, D: 8, s: { context: 'separate' } },
  { B: 24, D: 16, s: { activeSubset: 4 } },
  { B: 24, D: 16, s: { activeSubset: 8, maskSelf: false, residual: true } },
  { B: 12, D: 16, s: {}, stale: [6, 0] },
  { B: 12, D: 16, s: {}, stale: [6, 4] },
  { B: 12, D: 16, s: { maskSelf: false }, stale: [20, 20] },
  { B: 64, D: 64, s: { residual: true } },
];

test('fused LIxP contextualiser: values and gradients (x, log τctx) match the op-by-op version', async (t) => {
  await setup();
  if (!hasKernel(LIXP_CONTEXT)) return t.skip(`no ${LIXP_CONTEXT} on ${tf.getBackend()}`);
  for (const c of CASES) {
    tf.tidy(() => {
      const x = rand([c.B, c.D], 3);
      const logTau = tf.scalar(Math.log(0.05 + Math.random()));
      const stale = c.stale && {
        rows: rand([c.stale[0], c.D], 2),
        fill: tf.scalar(c.stale[1]),
      };
      const what = `B${c.B} D${c.D} ${JSON.stringify(c.s)}${c.stale ? ` stale ${c.stale}` : ''}`;
      const fused = evaluate(c, x, logTau, stale);
      for (const [name, ref] of [
        ['op-by-op', opByOp(() => evaluate(c, x, logTau, stale))],
        ['stock', stock(() => evaluate(c, x, logTau, stale))],
      ] as const) {
        for (const k of Object.keys(fused) as (keyof typeof fused)[])
          assertClose(fused[k], ref[k], `${what} ${k} vs ${name}`, 2e-5, 1e-4);
      }
    });
  }
});

test('fused LIxP contextualiser: taken on the paper path only, and off with lixp: false', async (t) => {
  await setup();
  if (!hasKernel(LIXP_CONTEXT)) return t.skip(`no ${LIXP_CONTEXT} on ${tf.getBackend()}`);
  const kernels = async (s: Partial<ContextSwitches>) => {
    const x = rand([8, 4]);
    const info = await tf.profile(() =>
      lixpContext(x, tf.scalar(0), { ...LIXP_PAPER, ...s } as ContextSwitches),
    );
    x.dispose();
    return info.kernelNames;
  };
  assert.ok((await kernels({})).includes(LIXP_CONTEXT), 'paper path fused');
  assert.ok((await kernels({ activeSubset: 4 })).includes(LIXP_CONTEXT), 'blocks fused');
  for (const s of [{ qkNorm: false }, { stopGrad: 'keys' }, { stages: 2 }] as const)
    assert.ok(!(await kernels(s)).includes(LIXP_CONTEXT), `${JSON.stringify(s)} op by op`);
  assert.equal(
    opByOp(() => hasKernel(LIXP_CONTEXT)),
    false,
    'lixp: false switches it off',
  );
  assert.throws(
    () => lixpContext(rand([6, 4]), tf.scalar(0), { ...LIXP_PAPER, activeSubset: 4 }),
    /activeSubset 4 must divide the batch size 6/,
  );
});
