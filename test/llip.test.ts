/**
 * Llip as the paper defines it, against the PyTorch reference (float64,
 * test/reference/towers.py `llip_mix`: per-token key/value projections, the query
 * from the pre-projection text feature, LayerNorm on K/Q/V, every rung of
 * Figure 3); the invariants the ladder rests on (the mixing weights follow the
 * caption, a constant query is the learned-average rung); every rung and the
 * Figure 7 variant train on `tiny` and resume bit-identically; and the
 * covariance spectrum and effective rank against torch.linalg.svdvals.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { makeConfig } from '../lib/config/presets';
import { mixingWeights } from '../lib/eval/mixing';
import { covarianceSpectrum, effectiveRank, symmetricEigenvalues } from '../lib/eval/spectrum';
import { disposeParams } from '../lib/model/params';
import {
  type LlipMixing,
  type LlipMixingKind,
  type LlipParams,
  llipLoss,
  llipMix,
  llipWeights,
} from '../lib/objectives/llip';
import { createModel } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import {
  labData,
  resolveModelConfig,
  runExperiment,
  trainExperiment,
} from '../lib/runs/experiment';
import { LADDER, rungLabel } from '../lib/runs/llip-report';
import { assertClose, loadGolden, setup, tensorOf } from './helpers';

before(setup);

/** A golden case's weights as LlipParams, from tensors named as in the fixture. */
function paramsOf(named: Record<string, tf.Tensor>): LlipParams {
  const ln = (n: string) =>
    named[`${n}.g`]
      ? ([named[`${n}.g`], named[`${n}.b`]] as [tf.Tensor1D, tf.Tensor1D])
      : undefined;
  return {
    wq: named.wq as tf.Tensor2D | undefined,
    query: named.query as tf.Tensor2D | undefined,
    wk: named.wk as tf.Tensor3D | undefined,
    wv: named.wv as tf.Tensor3D,
    wo: named.wo as tf.Tensor2D,
    kNorm: ln('kn'),
    qNorm: ln('qn'),
    vNorm: ln('vn'),
    logScale: named.logScale as tf.Scalar,
    bias: named.bias as tf.Scalar,
  };
}

/** The case's inputs in fixture order: tokens, g, W_T, its weights, logScale, bias. */
/** A llipPaper fixture of golden.json (make_golden.py `llip_paper_cases`). */
interface LlipCase {
  mixing: LlipMixingKind;
  heads: number;
  tau: number;
  tokens: number[][][];
  g: number[][];
  wt: number[][];
  params: Record<string, unknown> & { logScale: number; bias: number };
  z: number[][][];
  loss: number;
  grads: Record<string, unknown>;
}

/** A spectrum fixture (make_golden.py `spectrum_cases`). */
interface SpectrumCase {
  kind: string;
  x: number[][];
  singularValues: number[];
  effectiveRank: number;
}

function inputsOf(c: LlipCase): { names: string[]; xs: tf.Tensor[] } {
  const names = Object.keys(c.params).filter((n) => n !== 'logScale' && n !== 'bias');
  const xs = [
    tensorOf(c.tokens),
    tensorOf(c.g),
    tensorOf(c.wt),
    ...names.map((n) => tensorOf(c.params[n])),
    tf.scalar(c.params.logScale),
    tf.scalar(c.params.bias),
  ];
  return { names: ['tokens', 'g', 'wt', ...names, 'logScale', 'bias'], xs };
}

const named = (names: string[], xs: tf.Tensor[]) =>
  Object.fromEntries(names.map((n, i) => [n, xs[i]])) as Record<string, tf.Tensor>;

for (const c of loadGolden().llipPaper as LlipCase[])
  test(`Llip (${c.mixing}, T = ${c.tokens[0].length}, τ = ${c.tau}): z, loss and every gradient match PyTorch`, () => {
    const cfg: LlipMixing = { heads: c.heads, tau: c.tau, mixing: c.mixing };
    const { names, xs } = inputsOf(c);
    const text = c.mixing === 'text';
    const z = tf.tidy(() => {
      const n = named(names, xs);
      return llipMix(n.tokens as tf.Tensor3D, text ? (n.g as tf.Tensor2D) : null, paramsOf(n), cfg);
    });
    assertClose(z.dataSync(), c.z, `${c.mixing} z_ij`, 1e-5, 1e-4);
    const f = (...t: tf.Tensor[]) => {
      const n = named(names, t);
      const g = n.g as tf.Tensor2D;
      const zt = tf.matMul(g, n.wt as tf.Tensor2D) as tf.Tensor2D; // z'_j = g_j W_T
      return llipLoss(n.tokens as tf.Tensor3D, text ? g : null, zt, paramsOf(n), cfg);
    };
    const { value, grads } = tf.valueAndGrads(f)(xs);
    assertClose(value.dataSync(), c.loss, `${c.mixing} loss`, 1e-5, 1e-5);
    names.forEach((n, i) => {
      assertClose(grads[i].dataSync(), c.grads[n], `${c.mixing} d${n}`, 1e-5, 1e-4);
    });
    tf.dispose([z, value, ...grads, ...xs]);
  });

test('the mixing weights change with the caption; the text-free rungs ignore it', () => {
  tf.tidy(() => {
    const c = loadGolden().llipPaper[0]; // text mixing, LayerNorm on K, Q, V
    const { names, xs } = inputsOf(c);
    const n = named(names, xs);
    const p = paramsOf(n);
    const cfg: LlipMixing = { heads: c.heads, tau: c.tau, mixing: 'text' };
    const phi = llipWeights(n.tokens as tf.Tensor3D, n.g as tf.Tensor2D, p, cfg); // [M, Bt, B, T]
    const [M, Bt, B, T] = phi.shape;
    assert.deepEqual([M, Bt, B], [c.heads, c.g.length, c.tokens.length]);
    const sums = tf.sum(phi, -1).dataSync();
    assertClose(sums, new Array(sums.length).fill(1), 'Φ sums to 1 over the tokens', 1e-6, 0);
    // image 0 read by caption 0 and by caption 1: the weights must differ
    const row = (j: number) => Array.from(tf.slice(phi, [0, j, 0, 0], [M, 1, 1, T]).dataSync());
    const moved = Math.max(...row(0).map((x, k) => Math.abs(x - row(1)[k])));
    assert.ok(moved > 1e-2, `Φ moved by only ${moved} between two captions`);
    for (const mixing of ['first', 'average'] as const) {
      const w = llipWeights(n.tokens as tf.Tensor3D, null, p, { ...cfg, mixing });
      assert.deepEqual(w.shape, [M, 1, B, T]);
      const want = mixing === 'average' ? 1 / T : 1;
      assertClose(
        tf.slice(w, [0, 0, 0, 0], [M, 1, B, 1]).dataSync(),
        new Array(M * B).fill(want),
        mixing,
        1e-7,
        0,
      );
    }
  });
});

test('a constant query reduces Llip to the learned-average rung (same z, same loss)', () => {
  tf.tidy(() => {
    const c = loadGolden().llipPaper[0];
    const { names, xs } = inputsOf(c);
    const n = named(names, xs);
    const p = paramsOf(n);
    const text: LlipMixing = { heads: c.heads, tau: c.tau, mixing: 'text' };
    const [Bt, Dt] = (n.g as tf.Tensor2D).shape;
    const g0 = tf.slice(n.g, [0, 0], [1, Dt]) as tf.Tensor2D;
    const gConst = tf.tile(g0, [Bt, 1]) as tf.Tensor2D; // every caption asks the same question
    const zText = llipMix(n.tokens as tf.Tensor3D, gConst, p, text); // [B, Bt, E]
    // the learned rung with its query set to that question (before LN_Q, which both apply)
    const learned = { ...p, query: tf.matMul(g0, p.wq!) as tf.Tensor2D };
    const zLearned = llipMix(n.tokens as tf.Tensor3D, null, learned, {
      ...text,
      mixing: 'learned',
    });
    const [B, , E] = zText.shape;
    for (let j = 0; j < Bt; j++)
      assertClose(
        tf.slice(zText, [0, j, 0], [B, 1, E]).dataSync(),
        zLearned.dataSync(),
        `caption ${j}`,
        1e-6,
        1e-5,
      );
    const zt = tf.matMul(n.g as tf.Tensor2D, n.wt as tf.Tensor2D) as tf.Tensor2D;
    const a = llipLoss(n.tokens as tf.Tensor3D, gConst, zt, p, text).dataSync()[0];
    const b = llipLoss(n.tokens as tf.Tensor3D, null, zt, learned, { ...text, mixing: 'learned' });
    assertClose(b.dataSync(), a, 'loss', 1e-6, 1e-6);
  });
});

test('mixingWeights on a tiny Llip model: one image, its caption and others', () => {
  const cfg = makeConfig('tiny', { objective: { name: 'llip', mixtureTokens: 4, heads: 4 } });
  const { world } = labData(cfg);
  const model = createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, 1);
  const batch = world.sampleBatch(new Rng(2), 3, 'train');
  const px = batch.images.length / 3;
  const phi = mixingWeights(model, batch.images.subarray(0, px), batch.tokens);
  assert.deepEqual(phi.shape, [4, 3, 1, 4]);
  const d = tf.tidy(
    () =>
      tf
        .max(
          tf.abs(
            tf.sub(
              tf.slice(phi, [0, 0, 0, 0], [4, 1, 1, 4]),
              tf.slice(phi, [0, 1, 0, 0], [4, 1, 1, 4]),
            ),
          ),
        )
        .dataSync()[0],
  );
  assert.ok(d > 0, 'two captions gave the same weights');
  phi.dispose();
  disposeParams(model.params);
});

// ---------------------------------------------------------------- every rung trains and resumes

const RUNGS: Array<[string, Record<string, unknown>]> = [
  ['first (registers)', { mixing: 'first' }],
  ['average', { mixing: 'average' }],
  ['learned average', { mixing: 'learned', norm: true }],
  ['Llip + LayerNorm on K, Q, V', { mixing: 'text', norm: true }],
  ['Llip + patch tokens (Figure 7)', { mixing: 'text', patchTokens: true, mixtureTokens: 2 }],
];

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lab-llip-'));
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

for (const [label, over] of RUNGS)
  test(`Llip rung ${label}: trains 4 steps on tiny, resumes bit-identically, evaluates`, () => {
    const cfg = makeConfig('tiny', {
      objective: { name: 'llip', mixtureTokens: 3, heads: 4, ...over },
      steps: 4,
      batchSize: 8,
      world: { trainScenes: 200, valScenes: 64, testScenes: 64 },
      eval: { every: 0, queryPerClass: 4, supportPerClass: 4, shots: [1, 4], episodes: 1 },
    });
    const [a, b] = [tmp(), tmp()];
    const quiet = { quiet: true, evalDuringTraining: false, checkpointEvery: 2 };
    const full = trainExperiment(cfg, { ...quiet, outDir: a });
    const own = full.model.objectiveParams;
    const T =
      (cfg.objective as { mixtureTokens: number }).mixtureTokens + (over.patchTokens ? 16 : 0);
    assert.deepEqual(full.model.params['llip.v.w'].shape, [
      T,
      cfg.model.image.width,
      cfg.model.embedDim,
    ]);
    assert.equal(own.includes('llip.q.w'), over.mixing === 'text', 'W_Q only for text mixing');
    assert.equal(own.includes('llip.query'), over.mixing === 'learned', 'a query only for learned');
    disposeParams(full.model.params);
    const first = trainExperiment(cfg, { ...quiet, outDir: b });
    disposeParams(first.model.params);
    fs.rmSync(path.join(b, 'checkpoints', 'ckpt-00000004.bin'));
    fs.rmSync(path.join(b, 'checkpoints', 'best.bin'), { force: true });
    fs.rmSync(path.join(b, 'final.json'));
    const run = runExperiment(cfg, { ...quiet, outDir: b, resume: true });
    assert.deepEqual(readJson(path.join(b, 'final.json')), readJson(path.join(a, 'final.json')));
    for (const rec of run.history) {
      assert.ok(Number.isFinite(rec.loss) && Number.isFinite(rec.mixEntropy), `step ${rec.step}`);
      assert.ok(rec.mixEntropy >= 0 && rec.mixEntropy <= 1 + 1e-6);
    }
    for (const r of run.results) assert.ok(r.zeroShot >= 0 && r.zeroShot <= 1);
    disposeParams(run.model.params);
  });

// ---------------------------------------------------------------- spectra

for (const c of loadGolden().spectrum as SpectrumCase[])
  test(`covarianceSpectrum and effectiveRank match torch.linalg.svdvals (${c.kind})`, () => {
    const x = tensorOf(c.x) as tf.Tensor2D;
    const s = covarianceSpectrum(x);
    x.dispose();
    const sMax = c.singularValues[0];
    assertClose(s, c.singularValues, `${c.kind} singular values`, 1e-9 * sMax + 1e-12, 2e-5);
    for (let i = 1; i < s.length; i++) assert.ok(s[i] <= s[i - 1], 'descending');
    assertClose(
      effectiveRank(Float32Array.from(c.singularValues)),
      c.effectiveRank,
      'erank',
      0,
      1e-6,
    );
    assertClose(effectiveRank(s), c.effectiveRank, 'erank of ours', 0, 1e-5);
  });

test('Jacobi eigenvalues: a rotated diagonal; effective rank bounds', () => {
  // Q diag(4, 1, 1e-6) Qᵀ with Q a rotation about (1, 1, 1)
  const [c, s] = [Math.cos(0.7), Math.sin(0.7)];
  const u = [1, 1, 1].map((x) => x / Math.sqrt(3));
  const Q = [0, 1, 2].map((i) =>
    [0, 1, 2].map(
      (j) =>
        (i === j ? c : 0) +
        (1 - c) * u[i] * u[j] +
        s *
          (i === j
            ? 0
            : [
                [0, -u[2], u[1]],
                [u[2], 0, -u[0]],
                [-u[1], u[0], 0],
              ][i][j]),
    ),
  );
  const d = [4, 1, 1e-6];
  const A = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++)
      for (let k = 0; k < 3; k++) A[i * 3 + j] += Q[i][k] * d[k] * Q[j][k];
  const eig = Array.from(symmetricEigenvalues(A, 3)).sort((a, b) => b - a);
  assertClose(eig, d, 'eigenvalues', 1e-15, 1e-9);
  assert.equal(effectiveRank(Float32Array.from([1, 0, 0])), 1);
  assertClose(effectiveRank(Float32Array.from([2, 2, 2, 2])), 4, 'flat spectrum', 0, 1e-12);
});

test('every rung of the llip-ladder grid has its own label, in the paper’s order', () => {
  const ladder = require('../sweeps/llip-ladder.ts').default as { axes: { objective: unknown[] } };
  const labels = ladder.axes.objective.map((o) => rungLabel(JSON.stringify(o)));
  assert.deepEqual(labels, [...LADDER]);
});
