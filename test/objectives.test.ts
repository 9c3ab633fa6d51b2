/**
 * The objective registry end to end, for every registered objective on a
 * shrunk `tiny` preset: config → train → checkpoint → resume (bit-identical to
 * the uninterrupted run) → evaluation, with the objective's scalars in every
 * history record. Then invariants of the interface itself: evaluation's scores
 * are the ones the loss contrasts, chunked backprop equals the whole batch for
 * every objective (Llip's weights and LIxP's τctx included), and each
 * objective's declared parameters are exactly the ones it owns.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { type ExperimentConfig, makeConfig } from '../lib/config/presets';
import { imageSide, scores, textSide } from '../lib/eval/evaluate';
import { disposeParams } from '../lib/model/params';
import { readWeights } from '../lib/model/safetensors';
import { OBJECTIVE_NAMES, OBJECTIVES } from '../lib/objectives/index';
import { createModel, ownParams } from '../lib/objectives/model';
import { sigmoidPairLoss } from '../lib/objectives/siglip';
import { Rng } from '../lib/rng';
import { weightsSha256 } from '../lib/runs/checkpoint';
import {
  initFromWeights,
  labData,
  resolveModelConfig,
  runExperiment,
  trainExperiment,
} from '../lib/runs/experiment';
import { lossAndGrads } from '../lib/train/step';
import { assertClose, setup } from './helpers';

before(setup);

/** Metrics each objective must log every step (its learnable scalars in human units). */
const SCALARS: Record<string, string[]> = {
  siglip: ['t', 'b'],
  clip: ['t'],
  lixp: ['tau1', 'b1', 'tau2', 'b2', 'tauCtx', 'lossBase', 'lossCtx', 'ctxEntropy'],
  llip: ['t', 'b', 'mixEntropy'],
};

function tinyConfig(name: string, steps: number): ExperimentConfig {
  return makeConfig('tiny', {
    objective: { name: name as 'siglip' },
    steps,
    batchSize: 8,
    world: { trainScenes: 200, valScenes: 64, testScenes: 64 },
    eval: { every: 0, queryPerClass: 4, supportPerClass: 4, shots: [1, 4], episodes: 1 },
  });
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lab-obj-'));
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

test('every objective has a schema, defaults that pass it, and a metric list here', () => {
  assert.deepEqual(OBJECTIVE_NAMES.sort(), Object.keys(SCALARS).sort());
  for (const n of OBJECTIVE_NAMES) assert.equal(OBJECTIVES[n].defaults.name, n);
});

for (const name of OBJECTIVE_NAMES) {
  test(`${name}: config → train → checkpoint → resume → evaluation`, () => {
    const cfg = tinyConfig(name, 4);
    const [a, b] = [tmp(), tmp()];
    const quiet = { quiet: true, evalDuringTraining: false, checkpointEvery: 2 };
    const full = trainExperiment(cfg, { ...quiet, outDir: a });
    disposeParams(full.model.params);
    // the same run, stopped after its step-2 checkpoint, then resumed
    const first = trainExperiment(cfg, { ...quiet, outDir: b });
    disposeParams(first.model.params);
    fs.rmSync(path.join(b, 'checkpoints', 'ckpt-00000004.bin'));
    fs.rmSync(path.join(b, 'checkpoints', 'best.bin'), { force: true });
    fs.rmSync(path.join(b, 'final.json'));
    const run = runExperiment(cfg, { ...quiet, outDir: b, resume: true });
    assert.ok(
      fs.existsSync(path.join(b, 'checkpoints', 'ckpt-00000004.bin')),
      'steps 3–4 not rerun',
    );
    assert.deepEqual(readJson(path.join(b, 'final.json')), readJson(path.join(a, 'final.json')));
    // the objective's scalars are in every history record, finite
    const lines = fs.readFileSync(path.join(b, 'history.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 4);
    for (const rec of lines.map((l) => JSON.parse(l)))
      for (const m of SCALARS[name])
        assert.ok(Number.isFinite(rec[m]), `${name}: step ${rec.step} lacks metric ${m}`);
    // evaluation ran through the objective: accuracies are probabilities
    for (const r of run.results) {
      assert.ok(r.zeroShot >= 0 && r.zeroShot <= 1, `${name} ${r.task} zero-shot ${r.zeroShot}`);
      for (const acc of Object.values(r.fewShot)) assert.ok(acc >= 0 && acc <= 1);
    }
    assert.ok(run.retrieval.i2t.r5 >= run.retrieval.i2t.r1);
    disposeParams(run.model.params);
  });
}

/** A model of `name` on the tiny towers, and a batch of the world. */
function modelAndBatch(name: string, B: number) {
  const cfg = tinyConfig(name, 1);
  const { world } = labData(cfg);
  const model = createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, 3);
  return { model, batch: world.sampleBatch(new Rng(5), B, 'train') };
}

for (const name of ['siglip', 'llip'])
  test(`${name}: the scores evaluation ranks by are the ones the loss contrasts`, () => {
    const { model, batch } = modelAndBatch(name, 6);
    const img = imageSide(model, batch.images);
    const txt = textSide(model, batch.tokens);
    const s = scores(model, img, txt); // [B, B]
    const own = ownParams(model);
    const fromScores = sigmoidPairLoss(s, own.logScale as tf.Scalar, own.bias as tf.Scalar);
    const out = { ...img, ...txt };
    const { loss, metrics } = OBJECTIVES[name as 'siglip'].loss(out, own, model.objective as never);
    assertClose(fromScores.dataSync(), loss.dataSync()[0], `${name} loss from scores`, 1e-5, 1e-5);
    tf.dispose([s, fromScores, loss, ...Object.values(img), ...Object.values(txt)]);
    tf.dispose(Object.values(metrics).filter((m) => !(m instanceof tf.Variable)));
    disposeParams(model.params);
  });

for (const name of OBJECTIVE_NAMES)
  test(`${name}: chunked backprop equals the whole-batch gradient, parameter by parameter`, () => {
    const { model, batch } = modelAndBatch(name, 10);
    const before = tf.memory().numTensors;
    const whole = lossAndGrads(model, batch, 0);
    const chunked = lossAndGrads(model, batch, 4);
    assertClose(chunked.loss.dataSync(), whole.loss.dataSync()[0], `${name} loss`, 1e-5, 1e-5);
    assert.deepEqual(Object.keys(chunked.grads).sort(), Object.keys(whole.grads).sort());
    for (const n of model.objectiveParams)
      assert.ok(whole.grads[n], `${name}: no gradient for ${n}`);
    for (const n of Object.keys(whole.grads))
      assertClose(
        chunked.grads[n].dataSync(),
        whole.grads[n].dataSync(),
        `${name} ${n}`,
        1e-5,
        2e-3,
      );
    assertClose(
      chunked.metrics.values.dataSync(),
      whole.metrics.values.dataSync(),
      'metrics',
      1e-5,
      1e-4,
    );
    for (const r of [whole, chunked])
      tf.dispose([r.loss, r.metrics.values, ...Object.values(r.grads)]);
    assert.equal(tf.memory().numTensors, before, `${name}: tensors leaked`);
    disposeParams(model.params);
  });

test('an objective owns exactly the parameters it declares, with initial values from the config', () => {
  const cfg = makeConfig('tiny', { objective: { name: 'lixp', tau1: 5, tauCtx: 0.5, b2: -3 } });
  const { world } = labData(cfg);
  const model = createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, 0);
  assert.deepEqual(model.objectiveParams, ['logTau1', 'bias1', 'logTau2', 'bias2', 'logTauCtx']);
  const v = (n: string) => model.params[n].dataSync()[0];
  assertClose(
    [v('logTau1'), v('logTauCtx'), v('bias2')],
    [Math.log(5), Math.log(0.5), -3],
    'init',
    1e-7,
    0,
  );
  disposeParams(model.params);
  // Llip: K mixture tokens in the tower, the mixing weights as its own
  const llip = makeConfig('tiny', { objective: { name: 'llip', mixtureTokens: 3, heads: 4 } });
  const m = createModel(resolveModelConfig(llip, world), llip.objective, world.tokenizer.END, 0);
  assert.deepEqual(m.params['img.mixture'].shape, [3, llip.model.image.width]);
  assert.deepEqual(m.objectiveParams, [
    'llip.q.w',
    'llip.k.w',
    'llip.v.w',
    'llip.o.w',
    'logScale',
    'bias',
  ]);
  disposeParams(m.params);
});

test('post-training: a run writes weights.safetensors; --init-from loads its towers only', () => {
  const dir = tmp();
  const sig = tinyConfig('siglip', 2);
  const run = trainExperiment(sig, { quiet: true, evalDuringTraining: false, outDir: dir });
  const { tensors } = readWeights(path.join(dir, 'weights.safetensors'));
  assert.equal(
    weightsSha256(run.model.params),
    readJson(path.join(dir, 'final.json')).weightsSha256,
  );
  disposeParams(run.model.params);
  const cfg = tinyConfig('lixp', 2);
  const { world } = labData(cfg);
  const model = createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, 9);
  initFromWeights(model, dir);
  for (const n of Object.keys(model.params)) {
    const got = model.params[n].dataSync();
    if (model.objectiveParams.includes(n)) assert.ok(!(n in tensors), `${n} is LIxP's own`);
    else assert.deepEqual(Array.from(got), Array.from(tensors[n].data), `${n} not loaded`);
  }
  assertClose(
    model.params.logTau1.dataSync(),
    Math.log(10),
    'LIxP scalars from its config',
    1e-7,
    0,
  );
  disposeParams(model.params);
  const wider = makeConfig('tiny', { model: { embedDim: 16 } });
  const other = createModel(
    resolveModelConfig(wider, world),
    wider.objective,
    world.tokenizer.END,
    0,
  );
  assert.throws(() => initFromWeights(other, dir), /other towers \(missing or mis-shaped: /);
  disposeParams(other.params);
});
