/**
 * lib/runs/dynamics.ts (notebook 05): the periodic evaluation records what the
 * notebook draws, and its zero-shot numbers, taken from the suite evaluation it
 * runs anyway, are the ones `zeroShotSummary` computes on its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../lib/backend/index';
import { makeConfig } from '../lib/config/presets';
import { trainWithDynamics } from '../lib/runs/dynamics';
import { labData, zeroShotSummary } from '../lib/runs/experiment';

const cfg = makeConfig('lab', {
  steps: 4,
  batchSize: 32,
  world: { trainScenes: 200, valScenes: 120, testScenes: 64 },
  eval: { every: 2, queryPerClass: 4, supportPerClass: 8, shots: [1, 4], episodes: 2 },
});

test('dynamics: evaluation every 2 steps, zero-shot as zeroShotSummary computes it', async () => {
  await initBackend();
  const data = labData(cfg);
  const run = trainWithDynamics(cfg, {
    data,
    every: 2,
    quiet: true,
    valBatch: 32,
    spectrumImages: 64,
  });
  assert.equal(run.history.length, 4);
  const evals = run.history.filter((r) => r.zeroShotMean !== undefined);
  assert.deepEqual(
    evals.map((r) => r.step),
    [2, 4],
  );
  const last = evals[evals.length - 1] as unknown as Record<string, number>;
  for (const key of ['valLoss', 'fewShot4', 'effectiveRank'])
    assert.ok(Number.isFinite(last[key]), key);
  // the model is the one of the last evaluation: recompute its zero-shot independently
  const ref = zeroShotSummary(run.model, data);
  assert.equal(Object.keys(ref).length, data.tasks.length + 1);
  for (const [k, v] of Object.entries(ref)) assert.equal(last[k], v, k);
});
