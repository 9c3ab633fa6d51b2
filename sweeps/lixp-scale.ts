/**
 * The scale study of the LIxP issue: SigLIP vs LIxP (α = 0.9) at the `lab`
 * preset over two training budgets, 3 seeds (12 runs). The slides say the gain
 * is emergent with training length and batch size; this asks whether the lab's
 * scale shows it. Zero-shot during training every 500 steps; the final
 * few-shot numbers come from each run's results.json and, for the full
 * training-free suite (eval.fewShot) at the end of each run.
 * Batch size is not an axis yet: 512 doubles a step's time (measured sizes below),
 * so it waits for a session with the machine to itself.
 * Size: the whole grid ran in 52 min with one worker on the 2-core machine shared
 * with other work (2026-12-02; training 134–147 s per 1500-step run, 267–292 s per
 * 3000-step run, plus the few-shot suite).
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'lixp-scale',
  preset: 'lab',
  base: {
    // zero-shot every 500 steps; at the end the whole training-free few-shot suite,
    // k = 1 … 64 from 128 support images per class (as fewShotConfig sets it)
    eval: {
      every: 500,
      supportPerClass: 128,
      shots: [1, 2, 4, 8, 16, 32, 64],
      episodes: 5,
      fewShot: {},
    },
  },
  axes: { 'objective.name': ['siglip', 'lixp'], steps: [1500, 3000] },
  seeds: [0, 1, 2],
};

export default grid;
