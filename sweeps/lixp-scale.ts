/**
 * The scale study of the LIxP issue: SigLIP vs LIxP (α = 0.9) at the `lab`
 * preset over two training budgets, 3 seeds (12 runs). The slides say the gain
 * is emergent with training length and batch size; this asks whether the lab's
 * scale shows it. Zero-shot during training every 500 steps; the final
 * few-shot numbers come from each run's results.json and, for the full
 * training-free suite (eval.fewShot) at the end of each run.
 * Batch size is not an axis yet: 512 doubles a step's time (measured sizes below),
 * so it waits for a session with the machine to itself.
 * Size (measured on the 2-core machine, load ≈ 2): a `lab` step ≈ 105–135 ms for
 * both objectives at batch 256 and the few-shot suite ≈ 1–1.5 min per run, so a
 * 1500-step run ≈ 4.5 min and a 3000-step one ≈ 8.5 min: ≈ 80 min with one worker.
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
