/**
 * The Llip paper's Figure 6a on the lab's world: zero-shot accuracy vs the
 * number of mixture tokens K ∈ {1, 4, 8, 16, 32, 64} at τ = 8 (the figure's
 * temperature), `lab` preset, 3 seeds. Paper (ViT-B/32): accuracy rises with K.
 * The runs' trainSeconds give the cost of K too (notebook 03 §7–8).
 * Size, measured on the 2-core machine (14-step `lab` runs extrapolated to 1500
 * steps + 3 evaluations; load average ≈ 2): K = 1: 210 s, 4: 260 s, 8: 281 s,
 * 16: ≈ 407 s, 32: 518 s, 64: 923 s (2.9 GB resident) per run; 6 × 3 = 18 runs
 * ≈ 2.2 h with one worker, ≈ 1.1 h with two.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'llip-k',
  preset: 'lab',
  base: { objective: { name: 'llip', tau: 8 }, eval: { every: 500 } },
  axes: { 'objective.mixtureTokens': [1, 4, 8, 16, 32, 64] },
  seeds: [0, 1, 2],
};

export default grid;
