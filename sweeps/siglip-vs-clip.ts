/**
 * SigLIP vs CLIP across batch sizes at the `lab` preset, 3 seeds each (18 runs):
 * the SigLIP paper's claim that the sigmoid loss holds up better than softmax at
 * small batches, tested on our world. Steps stay at the preset's 1500 for every
 * batch size, so larger batches also see more examples — the paper's setting
 * too (fixed steps); compare within a batch size first.
 * About 6 min per batch-256 run on the 2-core machine (environment.md); run it
 * with `npm run sweep -- siglip-vs-clip` and leave it, or spread it with --queue.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'siglip-vs-clip',
  preset: 'lab',
  axes: { 'objective.name': ['siglip', 'clip'], batchSize: [64, 128, 256] },
  seeds: [0, 1, 2],
};

export default grid;
