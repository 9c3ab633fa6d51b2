/**
 * LIxP's memory ablations (issue 13): the stale FIFO memory of past batches, the
 * reduced active subset and the two-stage contextualisation. Each is checked
 * against a definition written here with plain ops (softmax over an explicit
 * memory with explicit masks), never against the code's own output; the stale
 * memory also end to end: its state survives a checkpoint (a resumed run equals
 * the uninterrupted one) and chunked backprop equals the whole batch.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { type ExperimentConfig, makeConfig } from '../lib/config/presets';
import { initParams, type Params } from '../lib/model/params';
import { LIXP_PAPER, type LixpConfig, lixp, lixpContext } from '../lib/objectives/lixp';
import { pushStale } from '../lib/objectives/lixp-context';
import { createModel, disposeModel } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import {
  labData,
  resolveModelConfig,
  runExperiment,
  trainExperiment,
} from '../lib/runs/experiment';
import { lossAndGrads } from '../lib/train/step';
import { assertClose, setup } from './helpers';

before(setup);

const [B, D] = [6, 8];
const raw = (seed: number, n = B) => tf.randomNormal([n, D], 0, 1, 'float32', seed) as tf.Tensor2D;
const logTauCtx = tf.scalar(Math.log(0.7));
const cfgOf = (s: Partial<LixpConfig>): LixpConfig => ({ ...lixp.defaults, ...s });
const unit = (x: tf.Tensor2D) => tf.div(x, tf.norm(x, 2, 1, true)) as tf.Tensor2D;

/**
 * Reference attention: softmax over the columns allowed by `allowed(i, j)` of
 * ⟨q̄_i, k̄_j⟩ / (τctx √D), forbidden columns get exactly zero weight; returns A·values.
 */
function reference(
  queries: tf.Tensor2D,
  keys: tf.Tensor2D,
  values: tf.Tensor2D,
  allowed: (i: number, j: number) => boolean,
): tf.Tensor2D {
  const [n, m] = [queries.shape[0], keys.shape[0]];
  const logits = tf.div(tf.matMul(unit(queries), unit(keys), false, true), 0.7 * Math.sqrt(D));
  const mask = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) mask[i * m + j] = allowed(i, j) ? 1 : 0;
  const M = tf.tensor2d(mask, [n, m]);
  const e = tf.mul(tf.exp(tf.sub(logits, tf.max(logits, 1, true))), M);
  return tf.matMul(tf.div(e, tf.sum(e, 1, true)), values) as tf.Tensor2D;
}

const sw = (s: Partial<LixpConfig>) => ({ ...LIXP_PAPER, ...s });

test('stale memory: past rows join the keys and values, empty rows are hidden', () => {
  const [x, past] = [raw(1), raw(2, 4)];
  const S = 7; // 4 filled rows, 3 still empty
  const stale = { rows: tf.concat([past, raw(3, 3)]) as tf.Tensor2D, fill: tf.scalar(4) };
  const got = lixpContext(x, logTauCtx, sw({ stale: S }), { stale }).xCtx;
  const memory = tf.concat([x, past]) as tf.Tensor2D; // the batch, then the filled stale rows
  const want = reference(x, memory, memory, (i, j) => j !== i);
  assertClose(got.dataSync(), want.dataSync(), 'X̂ctx with stale rows', 1e-5, 1e-6);
  // an empty memory is the paper's method exactly
  const empty = { rows: tf.zeros([S, D]) as tf.Tensor2D, fill: tf.scalar(0) };
  const plain = lixpContext(x, logTauCtx, sw({})).xCtx;
  const withEmpty = lixpContext(x, logTauCtx, sw({ stale: S }), { stale: empty }).xCtx;
  assertClose(withEmpty.dataSync(), plain.dataSync(), 'empty stale memory', 1e-6, 1e-7);
});

test('pushStale is first in, first out: newest batch first, fill capped at S', () => {
  const S = 2 * B;
  let mem = { rows: tf.zeros([S, D]) as tf.Tensor2D, fill: tf.scalar(0) };
  const batches = [raw(10), raw(11), raw(12)];
  const fills: number[] = [];
  for (const x of batches) {
    mem = pushStale(mem, x);
    fills.push(mem.fill.dataSync()[0]);
  }
  assert.deepEqual(fills, [B, 2 * B, 2 * B]);
  const want = tf.concat([batches[2], batches[1]]); // the oldest batch fell out
  assertClose(mem.rows.dataSync(), want.dataSync(), 'FIFO rows', 0, 0);
  // a memory smaller than the batch keeps the batch's first S rows
  const small = pushStale(
    { rows: tf.zeros([4, D]) as tf.Tensor2D, fill: tf.scalar(0) },
    batches[0],
  );
  assertClose(
    small.rows.dataSync(),
    tf.slice(batches[0], [0, 0], [4, -1]).dataSync(),
    'S < B',
    0,
    0,
  );
  assert.equal(small.fill.dataSync()[0], 4);
});

test('active subset: each image attends only inside its block, as if the block were the batch', () => {
  const x = raw(20, 8);
  const got = lixpContext(x, logTauCtx, sw({ activeSubset: 4 })).xCtx;
  const blocks = [0, 4].map((s) => {
    const part = tf.slice(x, [s, 0], [4, -1]) as tf.Tensor2D;
    return reference(part, part, part, (i, j) => i !== j);
  });
  assertClose(got.dataSync(), tf.concat(blocks).dataSync(), 'blockwise X̂ctx', 1e-5, 1e-6);
  const A = lixpContext(x, logTauCtx, sw({ activeSubset: 4 })).attention.arraySync();
  for (let i = 0; i < 8; i++)
    for (let j = 0; j < 8; j++)
      if (Math.floor(i / 4) !== Math.floor(j / 4)) assert.equal(A[i][j], 0, `A[${i}][${j}]`);
  assert.throws(
    () => lixpContext(raw(21, 6), logTauCtx, sw({ activeSubset: 4 })),
    /activeSubset 4 must divide the batch size 6/,
  );
});

test('two stages: the second round queries with the first round output', () => {
  const x = raw(30);
  const got = lixpContext(x, logTauCtx, sw({ stages: 2 })).xCtx;
  const first = reference(x, x, x, (i, j) => i !== j);
  const want = reference(first, x, x, (i, j) => i !== j);
  assertClose(got.dataSync(), want.dataSync(), 'two-stage X̂ctx', 1e-5, 1e-6);
});

test('config gate: memory ablations refuse combinations they do not define', () => {
  const bad = (objective: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => makeConfig('tiny', { objective: { name: 'lixp', ...objective } as never }),
      re,
    );
  bad(
    { stale: 16, memory: 'images+texts' },
    /objective\.memory: must be 'images' with a stale memory/,
  );
  bad({ activeSubset: 1 }, /objective\.activeSubset: must be 0 \(off\) or >= 2/);
  bad(
    { activeSubset: 4, context: 'separate' },
    /objective\.context: must be 'batch' with an active subset/,
  );
  bad({ stages: 3 }, /objective\.stages: must be <= 2/);
  // configs without the new fields keep their old form (and their run ids)
  const plain = makeConfig('tiny', { objective: { name: 'lixp' } });
  assert.ok(!('stale' in plain.objective) && !('stages' in plain.objective));
});

function staleConfig(steps: number): ExperimentConfig {
  return makeConfig('tiny', {
    objective: { name: 'lixp', stale: 12 },
    steps,
    batchSize: 8,
    world: { trainScenes: 200, valScenes: 64, testScenes: 64 },
    eval: { every: 0, queryPerClass: 4, supportPerClass: 4, shots: [1], episodes: 1 },
  });
}

test('stale memory end to end: it fills, is checkpointed, and a resumed run equals the straight one', () => {
  const cfg = staleConfig(4);
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lab-stale-'));
  const [a, b] = [tmp(), tmp()];
  const quiet = { quiet: true, evalDuringTraining: false, checkpointEvery: 2 };
  const full = trainExperiment(cfg, { ...quiet, outDir: a });
  // after 4 steps of 8 the 12-row memory is full and holds the last batches
  assert.equal(full.model.state['lixp.stale.fill'].dataSync()[0], 12);
  const weights = full.history.map((r) => r.ctxStaleWeight);
  assert.equal(weights[0], 0, 'step 1: the memory is empty, so no weight on it');
  assert.ok(weights[1] > 0 && weights[3] > 0, `weight on stale rows ${weights}`);
  disposeModel(full.model);
  const first = trainExperiment(cfg, { ...quiet, outDir: b });
  disposeModel(first.model);
  fs.rmSync(path.join(b, 'checkpoints', 'ckpt-00000004.bin'));
  fs.rmSync(path.join(b, 'checkpoints', 'best.bin'), { force: true });
  fs.rmSync(path.join(b, 'final.json'));
  const run = runExperiment(cfg, { ...quiet, outDir: b, resume: true });
  const read = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'final.json'), 'utf8'));
  assert.deepEqual(read(b), read(a), 'resumed = uninterrupted (the memory came back)');
  disposeModel(run.model);
});

test('stale memory: chunked backprop gives the whole batch gradients and the same next memory', () => {
  const cfg = staleConfig(1);
  const data = labData(cfg);
  const model = createModel(
    resolveModelConfig(cfg, data.world),
    cfg.objective,
    data.world.tokenizer.END,
    3,
  );
  // a memory that already holds something
  tf.tidy(() => {
    model.state['lixp.stale.rows'].assign(
      tf.randomNormal([12, model.config.embedDim], 0, 1, 'float32', 5),
    );
    model.state['lixp.stale.fill'].assign(tf.scalar(10));
  });
  const batch = data.world.sampleBatch(new Rng(4), 8, 'train');
  const whole = lossAndGrads(model, batch, 0);
  const chunked = lossAndGrads(model, batch, 3);
  assertClose(chunked.loss.dataSync(), whole.loss.dataSync()[0], 'loss', 1e-5, 1e-6);
  for (const n of Object.keys(whole.grads))
    assertClose(chunked.grads[n].dataSync(), whole.grads[n].dataSync(), `grad ${n}`, 2e-4, 2e-5);
  assert.deepEqual(
    Object.keys(whole.grads).filter((n) => n.includes('stale')),
    [],
    'state is not learned',
  );
  for (const n of Object.keys(whole.next))
    assertClose(chunked.next[n].dataSync(), whole.next[n].dataSync(), `next ${n}`, 1e-5, 1e-6);
  assert.equal(whole.next['lixp.stale.fill'].dataSync()[0], 12);
  tf.dispose([whole.loss, chunked.loss, whole.metrics.values, chunked.metrics.values]);
  tf.dispose([...Object.values(whole.grads), ...Object.values(chunked.grads)]);
  tf.dispose([...Object.values(whole.next), ...Object.values(chunked.next)]);
  disposeModel(model);
});

test('objective state: LIxP without a stale memory has none; the loss refuses a missing one', () => {
  assert.deepEqual(lixp.state?.(cfgOf({}), { embedDim: D } as never), {});
  const cfg = cfgOf({ stale: 4 });
  const p: Params = initParams(lixp.params(cfg, { embedDim: D } as never), 1);
  assert.throws(
    () => lixp.loss({ image: raw(1), text: raw(2) }, p, cfg),
    /stale=4 needs the model's state 'lixp.stale.rows'/,
  );
});
