/**
 * The Llip paper's Figure 7 on the lab's world: the patch tokens let into the
 * cross-attention (each with its own key/value projection, objective.patchTokens)
 * or not, for K ∈ {1, 8, 32} mixture tokens at τ = 1 (the figure's temperature),
 * `lab` preset, 3 seeds. The lab has 16 patch tokens (the paper's B/32: 49).
 * Paper: accuracy still rises with K, and K = 32 mixture tokens beat 49 patch
 * tokens + 1.
 * Size, measured on the 2-core machine (the filed runs' durations, two workers
 * side by side, other work at times; at 9d4b111 and 429dc68): without patches
 * 359 / 562 / 464 s, with them 312 / 475 / 613 s per run on average
 * (K = 1 / 8 / 32); 18 runs ≈ 2.3 h of worker time, ≈ 1.2 h with two workers.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'llip-patches',
  preset: 'lab',
  base: { objective: { name: 'llip', tau: 1 }, eval: { every: 500 } },
  axes: { 'objective.patchTokens': [false, true], 'objective.mixtureTokens': [1, 8, 32] },
  seeds: [0, 1, 2],
};

export default grid;
