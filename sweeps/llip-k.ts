/**
 * The Llip paper's Figure 6a on the lab's world: zero-shot accuracy vs the
 * number of mixture tokens K ∈ {1, 4, 8, 16, 32, 64} at τ = 8 (the figure's
 * temperature), `lab` preset, 3 seeds. Paper (ViT-B/32): accuracy rises with K.
 * The runs' trainSeconds give the cost of K too (notebook 03 §7–8).
 * Size, measured on the 2-core machine (the filed runs' durations, two workers
 * side by side, at 9d4b111): K = 1: 461 s, 4: 561 s, 8: 507 s, 16: 652 s,
 * 32: 799 s, 64: 935 s per run on average (2.9 GB resident at K = 64); 18 runs
 * ≈ 3.2 h of worker time, ≈ 1.6 h with two workers. Its K = 64 runs are
 * llip-tau's τ = 8 runs (same config, same id): whichever grid runs second
 * copies them in.
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
