/**
 * Image-tower pooling ablation at a short `lab` schedule: cls token vs mean of
 * patch tokens vs multihead attention pooling (MAP, the lab default), SigLIP loss,
 * 2 seeds (6 runs). 400 steps keep one run to about two minutes on the 2-core
 * machine, so the whole grid is a coffee break with two workers.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'pool-ablation',
  preset: 'lab',
  base: { steps: 400, eval: { every: 0 } },
  axes: { 'model.image.pool': ['cls', 'mean', 'map'] },
  seeds: [0, 1],
};

export default grid;
