/**
 * The few-shot suite (issue 12): prototype, Tip-Adapter and kNN logits and the
 * linear probe against PyTorch float64 golden values (test/reference/make_golden.py),
 * the cross-validations reading the support set only, the invariants that hold,
 * no tensor leaks, and the config gate of `eval.fewShot`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  crossValidateTip,
  disposeParams,
  type EmbeddingCache,
  FEWSHOT_DEFAULTS,
  type FewShotMethod,
  type FewShotOptions,
  fewShotSettings,
  knnLogits,
  l2normalize,
  linearProbe,
  makeConfig,
  nearestNeighbours,
  prototypeLogits,
  Rng,
  runEpisodes,
  runExperiment,
  suiteAverage,
  summariseFewShot,
  table1Rows,
  tipAdapterLogits,
} from '../lib';
import { initBackend } from '../lib/backend/index';
import { nativeProbeFit } from '../lib/backend/native';
import type { ProbeOptions } from '../lib/eval/probe';
import { meanCI } from '../lib/stats';
import { assertClose, loadGolden, setup, tensorOf } from './helpers';

before(setup);

const t2 = (x: unknown) => tensorOf(x) as tf.Tensor2D;
const argmaxRows = (x: tf.Tensor2D) => Array.from(tf.tidy(() => tf.argMax(x, 1).dataSync()));

/** Runs f and checks it leaves no tensor behind beyond what it returns. */
function noLeak<T>(what: string, f: () => T, returned = 0): T {
  const before = tf.memory().numTensors;
  const out = f();
  assert.equal(tf.memory().numTensors, before + returned, `${what} leaked tensors`);
  return out;
}

test('prototypeLogits and tipAdapterLogits match PyTorch (float64)', () => {
  const g = loadGolden().fewshot;
  const [q, s, text] = [t2(g.query), t2(g.support), t2(g.classText)];
  const y = Int32Array.from(g.labels);
  const p = noLeak('prototypeLogits', () => prototypeLogits(q, s, y, g.numClasses), 1);
  assertClose(p.dataSync(), g.prototype, 'prototype', 1e-5, 1e-5);
  for (const c of g.tip) {
    const o = { alpha: c.alpha, beta: c.beta };
    const z = noLeak('tipAdapterLogits', () => tipAdapterLogits(q, s, y, g.numClasses, text, o), 1);
    assertClose(z.dataSync(), c.logits, `tip α=${c.alpha} β=${c.beta}`, 1e-4, 1e-6);
    z.dispose();
  }
  tf.dispose([q, s, text, p]);
});

test('knnLogits matches PyTorch for every vote, ties going to the lower support index', () => {
  const g = loadGolden().fewshot;
  const [q, s] = [t2(g.query), t2(g.support)];
  const y = Int32Array.from(g.labels);
  // the fixture's tie must be exact here too, or the rule would not be exercised
  const cos = tf.tidy(
    () => tf.matMul(l2normalize(q), l2normalize(s), false, true).arraySync() as number[][],
  );
  assert.equal(
    Math.fround(cos[0][1]),
    Math.fround(cos[0][5]),
    'support rows 1 and 5 tie for query 0',
  );
  for (const c of g.knn) {
    const o = { k: c.k, vote: c.vote, temperature: c.temperature };
    const z = noLeak('knnLogits', () => knnLogits(q, s, y, g.numClasses, o), 1);
    assertClose(z.dataSync(), c.logits, `knn k=${c.k} ${c.vote} T=${c.temperature}`, 1e-5, 1e-5);
    z.dispose();
  }
  const nearest = knnLogits(q, s, y, g.numClasses, { k: 1, vote: 'plurality' });
  assert.equal(
    argmaxRows(nearest)[0],
    g.labels[1],
    'the tie goes to row 1 (lower index), not row 5',
  );
  tf.dispose([q, s, nearest]);
});

test('the linear probe matches PyTorch on the toy problem: CV hits, chosen λ, logits, accuracy', () => {
  const g = loadGolden().probe;
  const [q, s] = [t2(g.query), t2(g.support)];
  const r = noLeak(
    'linearProbe',
    () => linearProbe(q, s, Int32Array.from(g.labels), g.numClasses, g.options),
    1,
  );
  assert.equal(r.lambda, g.lambda);
  assert.equal(r.cvAccuracy, Math.max(...g.cvHits) / g.labels.length);
  // 300 momentum steps in float32 vs float64: logits agree to 4e-7 (measured); the smallest
  // top-2 gap of any prediction in the fixture is g.minGap (0.0115), far above that
  assertClose(r.logits.dataSync(), g.logits, 'probe logits', 1e-5, 1e-4);
  const pred = argmaxRows(r.logits);
  const acc = pred.filter((p, i) => p === g.queryLabels[i]).length / pred.length;
  assert.equal(acc, g.accuracy);
  tf.dispose([q, s, r.logits]);
});

/** Random unit-ish rows, class means apart: a toy cache of C classes. */
function toyCache(
  C: number,
  perClass: number,
  queryPerClass: number,
  seed: number,
): EmbeddingCache {
  const rng = new Rng(seed);
  const E = 16;
  const means = Array.from({ length: C }, () => Array.from({ length: E }, () => rng.normal()));
  const draw = (n: number) => {
    const labels = Int32Array.from({ length: n * C }, (_, i) => i % C);
    const x = Array.from(labels, (c) => means[c].map((m) => m + 1.5 * rng.normal()));
    return { x: tf.tidy(() => l2normalize(tf.tensor2d(x))) as tf.Tensor2D, labels };
  };
  const [sp, qu] = [draw(perClass), draw(queryPerClass)];
  const text = tf.tidy(() =>
    l2normalize(tf.add(tf.tensor2d(means), tf.randomNormal([C, E], 0, 2, 'float32', seed))),
  );
  const cache: EmbeddingCache = {
    task: `toy${seed}`,
    numClasses: C,
    query: qu.x,
    queryLabels: qu.labels,
    queryText: tf.matMul(qu.x, text, false, true) as tf.Tensor2D,
    support: sp.x,
    supportLabels: sp.labels,
    supportText: tf.matMul(sp.x, text, false, true) as tf.Tensor2D,
  };
  text.dispose();
  return cache;
}

const disposeToy = (c: EmbeddingCache) =>
  tf.dispose([c.query, c.queryText, c.support, c.supportText]);
const small: FewShotOptions = {
  ...FEWSHOT_DEFAULTS,
  shots: [1, 4],
  episodes: 3,
  probe: { ...FEWSHOT_DEFAULTS.probe, steps: 40 },
};

test('cross-validated Tip-Adapter and probe never read query labels: scrambled labels, same α, β and λ', () => {
  const c = toyCache(4, 8, 10, 1);
  const rows = noLeak('runEpisodes', () => runEpisodes(c, small));
  const scrambled = new Rng(5).shuffle(Array.from(c.queryLabels));
  const rows2 = runEpisodes({ ...c, queryLabels: Int32Array.from(scrambled) }, small);
  const chosen = (rs: typeof rows, m: string) =>
    rs.filter((r) => r.method === m).map((r) => `${r.k}/${r.episode}/${r.chosen}`);
  for (const m of ['tip-cv', 'linear-probe'])
    assert.deepEqual(chosen(rows2, m), chosen(rows, m), m);
  const cv = rows.filter((r) => r.method === 'tip-cv' && r.k === 4).map((r) => r.chosen);
  assert.ok(
    cv.some((s) => s !== 'alpha=1,beta=5.5'),
    `CV moved off the default at 4 shots: ${cv}`,
  );
  const acc = (rs: typeof rows) => rs.filter((r) => r.method === 'tip-cv').map((r) => r.accuracy);
  assert.notDeepEqual(acc(rows2), acc(rows), 'the scrambled labels do change the scored accuracy');
  disposeToy(c);
});

test('crossValidateTip: the grid point with the most leave-one-out hits; the default at one shot', () => {
  const c = toyCache(3, 6, 2, 2);
  const grid = { alphas: [0, 4, 64], betas: [1, 5.5] };
  const pick = noLeak('crossValidateTip', () =>
    crossValidateTip(c.support, c.supportLabels, 3, c.supportText, grid),
  );
  // brute force: leave-one-out accuracy of every grid point, through the public tipAdapterLogits path
  const S = c.supportLabels.length;
  const sArr = c.support.arraySync();
  const tArr = c.supportText.arraySync();
  let best = -1;
  for (const alpha of [...grid.alphas, 1])
    for (const beta of grid.betas.concat(5.5)) {
      let hits = 0;
      for (let i = 0; i < S; i++) {
        const keep = [...Array(S).keys()].filter((j) => j !== i);
        const z = tf.tidy(() => {
          const q = tf.tensor2d([sArr[i]]);
          const s = tf.tensor2d(keep.map((j) => sArr[j]));
          const aff = tf.matMul(q, s, false, true);
          const vis = tf.matMul(
            tf.exp(tf.mul(tf.sub(aff, 1), beta)),
            tf
              .oneHot(
                tf.tensor1d(
                  keep.map((j) => c.supportLabels[j]),
                  'int32',
                ),
                3,
              )
              .toFloat(),
          );
          return tf
            .argMax(tf.add(tf.mul(tf.tensor2d([tArr[i]]), 100), tf.mul(vis, alpha)), 1)
            .dataSync()[0];
        });
        if (z === c.supportLabels[i]) hits++;
      }
      best = Math.max(best, hits);
    }
  assert.equal(pick.looAccuracy, best / S);
  const one = crossValidateTip(
    c.support.slice(0, 3),
    c.supportLabels.slice(0, 3),
    3,
    c.supportText.slice(0, 3),
    grid,
  );
  assert.deepEqual([one.alpha, one.beta], [1, 5.5], 'one shot per class: the published default');
  assert.ok(Number.isNaN(one.looAccuracy));
  disposeToy(c);
});

test('invariants: at one shot prototype = 1-NN (every vote); α = 0 or β = 0 leaves zero-shot', () => {
  const c = toyCache(5, 1, 20, 3);
  const y = c.supportLabels;
  const proto = prototypeLogits(c.query, c.support, y, 5);
  for (const vote of ['plurality', 'rank', 'softmax'] as const) {
    const nn = knnLogits(c.query, c.support, y, 5, { k: 1, vote });
    assert.deepEqual(argmaxRows(nn), argmaxRows(proto), vote);
    nn.dispose();
  }
  const text = tf.tidy(() => tf.randomNormal([5, 16], 0, 1, 'float32', 9)) as tf.Tensor2D;
  const zs = tf.tidy(() =>
    tf.mul(tf.matMul(c.query, l2normalize(text), false, true), 100),
  ) as tf.Tensor2D;
  const a0 = tipAdapterLogits(c.query, c.support, y, 5, text, { alpha: 0, beta: 5.5 });
  assertClose(a0.dataSync(), zs.arraySync(), 'α = 0 is 100·zero-shot', 1e-4, 1e-5);
  const b0 = tipAdapterLogits(c.query, c.support, y, 5, text, { alpha: 3, beta: 0 });
  assert.deepEqual(argmaxRows(b0), argmaxRows(zs), 'β = 0 adds the same count to every class');
  tf.dispose([proto, text, zs, a0, b0]);
  disposeToy(c);
});

test('nearestNeighbours: the fast path equals a brute-force stable sort, duplicates included', () => {
  const rng = new Rng(11);
  const rows = 50;
  const S = 40;
  const a = Array.from({ length: rows * S }, () => Math.fround(rng.uniform() * 2 - 1));
  for (let i = 0; i < rows; i += 3) a[i * S + 7] = a[i * S + 30]; // exact ties, some inside the top k
  for (let i = 1; i < rows; i += 4) a[i * S + 2] = a[i * S + 3] = a[i * S + 39] = 0.999;
  const aff = tf.tensor2d(a, [rows, S]);
  for (const k of [1, 3, 8, S]) {
    const nb = nearestNeighbours(aff, k);
    for (let i = 0; i < rows; i++) {
      const order = [...Array(S).keys()].sort((p, q) => a[i * S + q] - a[i * S + p] || p - q);
      assert.deepEqual(
        Array.from(nb.index.subarray(i * k, i * k + k)),
        order.slice(0, k),
        `row ${i} k ${k}`,
      );
    }
  }
  assert.throws(() => nearestNeighbours(aff, S + 1), /k must be an integer in \[1, 40\]/);
  aff.dispose();
});

test('linear probe: one shot uses the largest λ, a fixed λ skips cross-validation', () => {
  const c = toyCache(3, 1, 4, 4);
  const r = linearProbe(c.query, c.support, c.supportLabels, 3, { steps: 20 });
  assert.equal(r.lambda, 1);
  assert.ok(Number.isNaN(r.cvAccuracy));
  const fixed = linearProbe(c.query, c.support, c.supportLabels, 3, { steps: 20, lambda: 0.05 });
  assert.equal(fixed.lambda, 0.05);
  tf.dispose([r.logits, fixed.logits]);
  disposeToy(c);
});

test("linear probe: the native fit gives the op-by-op loop's bits (CV, one shot, fixed λ, 10 classes)", async () => {
  const info = await initBackend();
  if (info.native)
    assert.ok(nativeProbeFit(), 'native kernels are on: the native fit must be used');
  const bits = (t: tf.Tensor) =>
    Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
  const cases: [number, number, Partial<ProbeOptions>][] = [
    [3, 5, { steps: 40 }], // 5-fold CV over 5 λ
    [3, 1, { steps: 40 }], // one shot: no CV
    [4, 6, { steps: 25, lambda: 0.05 }],
    [10, 16, { steps: 60 }],
  ];
  for (const [C, k, opts] of cases) {
    const c = toyCache(C, k, 4, 11 + C + k);
    const ours = linearProbe(c.query, c.support, c.supportLabels, C, opts);
    const ops = linearProbe(c.query, c.support, c.supportLabels, C, { ...opts, native: false });
    assert.equal(ours.lambda, ops.lambda, `C=${C} k=${k}: λ`);
    assert.ok(Object.is(ours.cvAccuracy, ops.cvAccuracy), `C=${C} k=${k}: CV accuracy`);
    assert.deepEqual(bits(ours.logits), bits(ops.logits), `C=${C} k=${k}: logits`);
    tf.dispose([ours.logits, ops.logits]);
    disposeToy(c);
  }
});

test('episodes: tidy rows, shared draws, summaries with Student-t CIs, Table 1 rows', () => {
  const caches = [toyCache(3, 5, 6, 6), toyCache(4, 5, 6, 7)];
  const rows = caches.flatMap((c) => runEpisodes(c, { ...small, shots: [2], episodes: 4 }));
  assert.equal(rows.length, 2 * (1 + 4 * 7), 'zero-shot once, then 7 methods × 4 episodes');
  const per = summariseFewShot(rows);
  const one = per.find((r) => r.task === 'toy6' && r.method === 'knn-rank')!;
  const xs = rows
    .filter((r) => r.task === 'toy6' && r.method === 'knn-rank')
    .map((r) => r.accuracy);
  assert.deepEqual({ ...one }, { task: 'toy6', method: 'knn-rank', k: 2, ...meanCI(xs) });
  const suite = suiteAverage(rows);
  const tip = suite.find((r) => r.method === 'tip' && r.k === 2)!;
  const byEp = [0, 1, 2, 3].map((e) =>
    rows
      .filter((r) => r.method === 'tip' && r.episode === e)
      .reduce((a, r) => a + r.accuracy / 2, 0),
  );
  assertClose(
    [tip.mean, tip.ci95],
    [meanCI(byEp).mean, meanCI(byEp).ci95],
    'suite mean ± CI over episodes',
    1e-12,
    0,
  );
  const zs = suite.find((r) => r.method === 'zero-shot')!;
  assert.deepEqual([zs.k, zs.ci95], [0, 0]);
  const t1 = table1Rows(
    [
      { name: 'A', method: 'siglip', rows: suite },
      { name: 'B', method: 'clip', rows: suite },
    ],
    { k: 2 },
  );
  assert.equal(t1.length, 9);
  assert.deepEqual(
    t1.map((r) => r['B gain']),
    [...Array(8).fill('+0.0'), '+0.0'],
  );
  caches.forEach(disposeToy);
});

test('eval.fewShot goes through the config gate; absent, runs are unchanged', () => {
  const base = makeConfig('tiny');
  assert.equal(base.eval.fewShot, undefined);
  const cfg = makeConfig('tiny', { eval: { fewShot: { methods: ['tip-cv'], tip: { alpha: 2 } } } });
  const o = fewShotSettings(cfg.eval, cfg.seed);
  assert.deepEqual(o.methods, ['tip-cv']);
  assert.deepEqual([o.tip.alpha, o.tip.beta, o.probe.steps], [2, 5.5, 300]);
  assert.throws(
    () => makeConfig('tiny', { eval: { fewShot: { methods: ['tip-cvv' as 'tip'] } } }),
    /eval\.fewShot\.methods\.0: must be one of zero-shot, prototype/,
  );
  assert.throws(
    () => makeConfig('tiny', { eval: { fewShot: { knn: { neigbours: 3 } as object } } }),
    /eval\.fewShot\.knn\.neigbours: unknown key \(did you mean 'neighbours'\?\)/,
  );
  assert.throws(
    () => makeConfig('tiny', { eval: { fewShot: { probe: { lr: 3 } } } }),
    /eval\.fewShot\.probe\.lr: must be <= 1, got 3/,
  );
});

test('a run with eval.fewShot ends with the suite: results.json and the run carry its averages', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-fewshot-'));
  const fewShot = {
    methods: ['zero-shot', 'prototype', 'tip-cv', 'knn-rank', 'linear-probe'] as FewShotMethod[],
    probe: { steps: 10 },
  };
  const cfg = makeConfig('tiny', {
    steps: 2,
    eval: { queryPerClass: 3, supportPerClass: 4, shots: [1, 4], episodes: 2, fewShot },
  });
  const before = tf.memory().numTensors;
  const run = runExperiment(cfg, { outDir: dir, quiet: true, evalDuringTraining: false });
  disposeParams(run.model.params);
  assert.equal(tf.memory().numTensors, before, 'no tensor left after the run and its suite');
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  assert.deepEqual(saved.fewShot, run.fewShot);
  const keys = saved.fewShot.map((r: { method: string; k: number }) => `${r.method}.${r.k}`);
  assert.deepEqual(keys.sort(), [
    'knn-rank.1',
    'knn-rank.4',
    'linear-probe.1',
    'linear-probe.4',
    'prototype.1',
    'prototype.4',
    'tip-cv.1',
    'tip-cv.4',
    'zero-shot.0',
  ]);
  fs.rmSync(dir, { recursive: true, force: true });
});
