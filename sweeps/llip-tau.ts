/**
 * The Llip paper's Figure 6b on the lab's world: zero-shot accuracy vs the
 * cross-attention temperature τ at K = 64, `lab` preset, 3 seeds. τ DIVIDES the
 * logits (eq. 1 and the official code; the paper's prose says the opposite), so
 * large τ flattens Φ towards the average rung. Paper (ViT-B/32): robust over a
 * range, worse for large τ.
 * Size, measured on the 2-core machine (14-step `lab` runs extrapolated to 1500
 * steps + 3 evaluations; load average ≈ 2): ≈ 923 s per K = 64 run (2.9 GB
 * resident; two workers fit in memory); 6 × 3 = 18 runs ≈ 4.6 h with one
 * worker, ≈ 2.3 h with two. Measured: 977 s per run with two workers side by
 * side (9d4b111). The τ = 8 runs are llip-k's K = 64 runs (same config, same
 * id): whichever grid runs second copies them in, so 15 runs train.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'llip-tau',
  preset: 'lab',
  base: { objective: { name: 'llip', mixtureTokens: 64 }, eval: { every: 500 } },
  axes: { 'objective.tau': [1, 2, 5, 8, 16, 32] },
  seeds: [0, 1, 2],
};

export default grid;
