/**
 * The scale study of the LIxP issue: SigLIP vs LIxP (α = 0.9) at the `lab`
 * preset over two training budgets, 3 seeds (12 runs). The slides say the gain
 * is emergent with training length and batch size; this asks whether the lab's
 * scale shows it. Zero-shot during training every 500 steps; the final
 * few-shot numbers come from each run's results.json and, for the full
 * training-free suite, from its saved weights.safetensors.
 * Batch size is not an axis yet: 512 doubles a step's time (measured sizes below),
 * so it waits for a session with the machine to itself.
 * Size (measured on the 2-core machine, load ≈ 2): a `lab` step ≈ 105–135 ms for
 * both objectives at batch 256, so a 1500-step run ≈ 3.5 min with evaluation and
 * a 3000-step one ≈ 7 min: 6 × 3.5 + 6 × 7 ≈ 63 min with one worker, ≈ 35 min with two.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'lixp-scale',
  preset: 'lab',
  base: { eval: { every: 500 } },
  axes: { 'objective.name': ['siglip', 'lixp'], steps: [1500, 3000] },
  seeds: [0, 1, 2],
};

export default grid;
