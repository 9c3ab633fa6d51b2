/**
 * Finished-run reuse (lib/runs/reuse.ts): a run of the same config, code and
 * backend is loaded instead of trained, and only when its folder still holds what
 * the index recorded; anything else trains. The reused model must equal the
 * trained one bit for bit (its weights' sha256 and the loss curve).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { type ExperimentConfig, makeConfig } from '../lib/config/presets';
import { disposeModel } from '../lib/objectives/model';
import { type RunOptions, runExperiment, trainExperiment } from '../lib/runs/experiment';
import { codeKey } from '../lib/runs/reuse';
import { setup } from './helpers';

const ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-reuse-'));
process.env.LAB_REUSE_DIR = path.join(ROOT, 'index');
before(setup);

function config(seed = 0): ExperimentConfig {
  return makeConfig('tiny', {
    objective: { name: 'siglip' },
    steps: 4,
    seed,
    batchSize: 8,
    world: { trainScenes: 200, valScenes: 64, testScenes: 64 },
    eval: { every: 2, queryPerClass: 4, supportPerClass: 4, shots: [1], episodes: 1 },
  });
}

let n = 0;
const dir = () => path.join(ROOT, `run-${n++}`);
const quiet: RunOptions = { quiet: true, reuse: true };

/** Train (or reuse) into a new folder; returns what the run says and frees its model. */
function run(cfg: ExperimentConfig, o: RunOptions = {}) {
  const outDir = dir();
  const r = trainExperiment(cfg, { ...quiet, outDir, ...o });
  disposeModel(r.model);
  return { outDir, reusedFrom: r.reusedFrom, final: r.final, history: r.history };
}

test('reuse: the second run of a config loads the first, bit for bit, and copies its files', () => {
  const cfg = config(1);
  const first = run(cfg, { checkpointEvery: 2, keepLast: 5 });
  assert.equal(first.reusedFrom, undefined, 'nothing to reuse yet: it trains');
  const second = run(cfg);
  assert.equal(second.reusedFrom, first.outDir);
  assert.deepEqual(second.final, first.final, 'same weights sha256 and loss curve');
  assert.deepEqual(second.history, first.history, 'the evaluations during training too');
  for (const f of ['config.json', 'history.jsonl', 'final.json', 'weights.safetensors'])
    assert.deepEqual(
      fs.readFileSync(path.join(second.outDir, f)),
      fs.readFileSync(path.join(first.outDir, f)),
      f,
    );
  assert.deepEqual(
    fs.readdirSync(path.join(second.outDir, 'checkpoints')).sort(),
    fs.readdirSync(path.join(first.outDir, 'checkpoints')).sort(),
  );
  // runExperiment evaluates the reused model like a trained one and says where it came from
  const outDir = dir();
  const ev = runExperiment(cfg, { ...quiet, outDir });
  assert.equal(ev.reusedFrom, first.outDir);
  assert.ok(fs.existsSync(path.join(outDir, 'results.json')));
  disposeModel(ev.model);
});

test('reuse: another config, checkpoints it never wrote, other evaluations or no flag all train', () => {
  const cfg = config(2);
  const first = run(cfg);
  assert.equal(run(config(3)).reusedFrom, undefined, 'another seed is another run');
  const ck = run(cfg, { checkpointEvery: 2 });
  assert.equal(ck.reusedFrom, undefined, 'checkpoints the first run never wrote');
  assert.equal(run(cfg, { evalDuringTraining: false }).reusedFrom, undefined);
  assert.equal(run(cfg, { reuse: false }).reusedFrom, undefined);
  assert.equal(run(cfg).reusedFrom, first.outDir, 'the first entry is still there');
  assert.equal(run(cfg, { checkpointEvery: 2 }).reusedFrom, ck.outDir);
});

/** A run whose folder is then changed by `spoil`: the next run of its config must train. */
function spoiled(seed: number, spoil: (outDir: string) => void) {
  const cfg = config(seed);
  const first = run(cfg);
  spoil(first.outDir);
  const second = run(cfg);
  assert.equal(second.reusedFrom, undefined);
  assert.deepEqual(second.final, first.final, 'training again gives the same bits');
}

test('reuse: a folder changed since it was recorded is a miss, and the run trains', () => {
  spoiled(4, (d) => {
    const final = JSON.parse(fs.readFileSync(path.join(d, 'final.json'), 'utf8'));
    fs.writeFileSync(
      path.join(d, 'final.json'),
      JSON.stringify({ ...final, lossCurveSha256: '0' }),
    );
  });
  spoiled(5, (d) => {
    const file = path.join(d, 'weights.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 1; // one bit of the last float: no longer final.json's sha256
    fs.writeFileSync(file, bytes);
  });
  spoiled(6, (d) => fs.rmSync(path.join(d, 'config.json')));
});

test('reuse: the code key is a stable hash of lib/, the packages, the backend and LAB_* switches', () => {
  assert.match(codeKey(), /^[0-9a-f]{12}$/);
  assert.equal(codeKey(), codeKey());
});
