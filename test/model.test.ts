/**
 * The two towers against an independent PyTorch implementation (conv2d patch
 * embedding, F.embedding lookup, torch attention): forward embeddings, loss and
 * gradients of selected parameters for cls / mean / MAP pooling with registers.
 * Then the training machinery: chunked gradients equal full-batch ones, the
 * tensor count stays flat, and a run is reproducible from its seed.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  batchLoss,
  createModel,
  defaultOptim,
  disposeParams,
  encodeImages,
  encodeTexts,
  exportParams,
  imageOutputs,
  loadParams,
  lossAndGrads,
  type Model,
  textOutputs,
  trainLoop,
} from '../lib';
import type { Batch } from '../lib/data/types';
import { Rng } from '../lib/rng';
import { assertClose, loadGolden, setup } from './helpers';

before(setup);

function goldenModel(c: any): Model {
  const model = createModel(c.config, c.loss, c.endId, 0);
  loadParams(model.params, c.params);
  return model;
}

for (const k of [0, 1, 2]) {
  test(`tiny model #${k} forward, loss and gradients match PyTorch`, () => {
    const c = loadGolden().models[k];
    const model = goldenModel(c);
    const B = c.batch;
    const images = tf.tensor4d(c.images, [B, 32, 32, 3]);
    const tokens = Int32Array.from(c.tokens);
    assertClose(
      encodeImages(model, images).dataSync(),
      c.imgEmb,
      `model ${k} (${c.config.image.pool}) image embeddings`,
      2e-5,
      1e-4,
    );
    assertClose(
      encodeTexts(model, tokens, B).dataSync(),
      c.txtEmb,
      `model ${k} text embeddings`,
      2e-5,
      1e-4,
    );
    const names = Object.keys(c.grads);
    const { value, grads } = tf.variableGrads(
      () => {
        const { loss, metrics } = batchLoss(model, images, tokens, B);
        tf.dispose(Object.values(metrics).filter((m) => !(m instanceof tf.Variable)));
        return loss;
      },
      names.map((n) => model.params[n]),
    );
    assertClose(value.dataSync(), c.lossValue, `model ${k} loss`, 1e-4, 1e-4);
    for (const n of names)
      assertClose(
        grads[model.params[n].name].dataSync(),
        c.grads[n],
        `model ${k} grad ${n}`,
        5e-5,
        2e-3,
      );
    disposeParams(model.params);
  });
}

function randomBatch(rng: Rng, B: number, L: number, vocab: number, endId: number): Batch {
  const images = Float32Array.from({ length: B * 32 * 32 * 3 }, () => rng.uniform());
  const tokens = new Int32Array(B * L);
  for (let i = 0; i < B; i++) {
    const len = 1 + rng.int(L - 1);
    for (let j = 0; j < len; j++) tokens[i * L + j] = 3 + rng.int(vocab - 3);
    tokens[i * L + len] = endId;
  }
  return { images, tokens, captions: [], size: B };
}

test('chunked (gradient-cached) backprop equals the full-batch gradient', () => {
  const c = loadGolden().models[0];
  const model = goldenModel(c);
  const batch = randomBatch(
    new Rng(3),
    10,
    c.config.text.contextLength,
    c.config.text.vocabSize,
    c.endId,
  );
  const full = lossAndGrads(model, batch, 0);
  const chunked = lossAndGrads(model, batch, 3);
  assertClose(chunked.loss.dataSync(), full.loss.dataSync()[0], 'chunked loss', 1e-5, 1e-5);
  for (const n of Object.keys(full.grads))
    assertClose(
      chunked.grads[n].dataSync(),
      full.grads[n].dataSync(),
      `chunked grad ${n}`,
      1e-5,
      1e-3,
    );
  tf.dispose([
    full.loss,
    chunked.loss,
    full.metrics.values,
    chunked.metrics.values,
    ...Object.values(full.grads),
    ...Object.values(chunked.grads),
  ]);
  disposeParams(model.params);
});

async function shortRun(seed: number) {
  const c = loadGolden().models[0];
  const model = createModel(c.config, 'siglip', c.endId, seed);
  const rng = new Rng(seed);
  const { history, adam } = trainLoop(model, {
    steps: 12,
    optim: { ...defaultOptim, warmupSteps: 3 },
    nextBatch: () =>
      randomBatch(rng, 8, c.config.text.contextLength, c.config.text.vocabSize, c.endId),
    quiet: true,
  });
  const weights = await exportParams(model.params);
  disposeParams(model.params);
  for (const v of [...Object.values(adam.m), ...Object.values(adam.v)]) v.dispose();
  return { history, weights };
}

test('training: loss falls, tensor count flat, identical history from the same seed', async () => {
  const before = tf.memory().numTensors;
  const a = await shortRun(7);
  const b = await shortRun(7);
  const c = await shortRun(8);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked by training');
  const counts = new Set(a.history.map((h) => h.tensors));
  assert.equal(counts.size, 1, `tensor count changed over steps: ${[...counts]}`);
  assert.deepEqual(
    a.history.map((h) => h.loss),
    b.history.map((h) => h.loss),
  );
  assert.deepEqual(a.weights, b.weights);
  assert.notDeepEqual(
    a.history.map((h) => h.loss),
    c.history.map((h) => h.loss),
  );
  assert.ok(
    a.history[11].loss < a.history[0].loss,
    `loss did not fall: ${a.history[0].loss} → ${a.history[11].loss}`,
  );
});

test('tower outputs: every combination of needs gives the same pooled image and text', () => {
  const c = loadGolden().models[1]; // cls pooling with registers
  const model = goldenModel(c);
  const B = c.batch;
  const images = tf.tensor4d(c.images, [B, 32, 32, 3]);
  const tokens = Int32Array.from(c.tokens);
  const all = { image: true, imageTokens: true, mixtureTokens: false, textFeature: true };
  const img = imageOutputs(model, images, all);
  const plain = imageOutputs(model, images, { ...all, imageTokens: false });
  assertClose(img.image!.dataSync(), plain.image!.dataSync(), 'pooled image', 0, 0);
  const T = (32 / c.config.image.patch) ** 2 + 1 + c.config.image.registers;
  assert.deepEqual(img.imageTokens!.shape, [B, T, c.config.image.width]);
  const txt = textOutputs(model, tokens, B, { textFeature: true });
  const projected = tf.matMul(txt.textFeature!, model.params['txt.head.w'] as tf.Tensor2D);
  assertClose(projected.dataSync(), txt.text!.dataSync(), 'text = g·W_T', 0, 0);
  assertClose(
    txt.text!.dataSync(),
    textOutputs(model, tokens, B, { textFeature: false }).text!.dataSync(),
    'text without g',
    0,
    0,
  );
  tf.dispose([images, projected, ...Object.values(img), ...Object.values(plain)]);
  tf.dispose(Object.values(txt));
  disposeParams(model.params);
});
