/**
 * A seconds-scale grid for the tests and for trying the sweep machinery: the
 * `tiny` preset cut to 5 steps and a thin evaluation, SigLIP vs CLIP × 2 seeds.
 * Its numbers mean nothing; that the four runs finish, once each, is the point.
 */
import type { Grid } from '../lib/runs/sweep';

const grid: Grid = {
  name: 'tiny-demo',
  preset: 'tiny',
  base: {
    steps: 5,
    batchSize: 16,
    world: { trainScenes: 200, valScenes: 64, testScenes: 64 },
    eval: { every: 0, queryPerClass: 4, supportPerClass: 16, shots: [1], episodes: 1 },
  },
  axes: { 'objective.name': ['siglip', 'clip'] },
  seeds: [0, 1],
};

export default grid;
