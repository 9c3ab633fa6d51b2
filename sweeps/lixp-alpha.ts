/**
 * LIxP's α ablation (Roth et al., CVPR 2025, ablation "(b) Relative weighting" of the
 * CVPR slides: α = 0.95 / 0.9 / 0.8 / 0.6 gave zero-shot 50.8 / 50.5 / 50.0 / 48.7 and
 * 16-shot 62.5 / 64.1 / 63.8 / 61.5 ± 0.3–0.5, against SigLIP's 51.0 / 60.1), with α = 1
 * (plain SigLIP through the same code path) as the baseline, on the `lab` preset,
 * 3 seeds: 15 runs. Defined here so the path from a sweep axis to the loss can be
 * followed (README); run and reported by the LIxP issue, not yet run.
 * Size it before launching: time one LIxP `lab` run, × 15 runs ÷ workers (a SigLIP
 * `lab` run trained in 188 s in the last measured full notebook run).
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'lixp-alpha',
  preset: 'lab',
  base: { objective: { name: 'lixp' } },
  axes: { 'objective.alpha': [1, 0.95, 0.9, 0.8, 0.6] },
  seeds: [0, 1, 2],
};

export default grid;
