/**
 * Post-training (the LIxP issue's "more experiments"; the paper continues a
 * pretrained SigLIP with LIxP): each 1500-step SigLIP run of the scale study
 * (`sweeps/lixp-scale.ts`, same seed) continues for 300 steps with LIxP (α = 0.9),
 * and, as the control with equal compute, for 300 more steps of SigLIP. The
 * warmup + cosine schedule restarts (AdamW's moments start at zero); the
 * objective's own scalars start from the config. Compare with LIxP from scratch
 * (lixp-scale, 1500 steps) in notebook 02.
 * Needs the scale study's SigLIP runs in the same --out (`npm run sweep -- lixp-scale`
 * first; a missing one fails its post-training run with the path it looked for).
 * Size: 6 runs of 300 steps + the few-shot suite ≈ 1 min each.
 */
import { flatten, type Grid } from '../lib/runs/spec';
import scale from './lixp-scale';

const grid: Grid = {
  name: 'lixp-post',
  preset: 'lab',
  base: { ...scale.base, steps: 300 },
  axes: { 'objective.name': ['lixp', 'siglip'] },
  seeds: [0, 1, 2],
  init: {
    grid: scale.name,
    preset: scale.preset,
    sets: { ...flatten(scale.base ?? {}), 'objective.name': 'siglip', steps: 1500 },
  },
};

export default grid;
