/**
 * Every LIxP ablation of the CVPR slides that is a switch of the loss, one at a
 * time from the paper's method (α = 0.9, three learned temperatures, self-mask,
 * QK-norm), beside SigLIP, at the `lab` preset, 3 seeds. The slides' zero-shot /
 * 16-shot numbers for each row are in notebook 02 and the issue. Not yet in the
 * grid: the stale memory of past batches, its active subset and the two-stage
 * variant (they need state across steps; see the LIxP issue's notes).
 * Size: 22 variants × 3 seeds = 66 runs ≈ 3.5 min each (see lixp-scale.ts) ≈ 3.9 h
 * with one worker, ≈ 2 h with two.
 */
import type { Grid } from '../lib/runs/sweep';

const lixp = { name: 'lixp' };

const grid: Grid = {
  name: 'lixp-ablations',
  preset: 'lab',
  base: { eval: { every: 500 } },
  axes: {
    objective: [
      { name: 'siglip' },
      lixp,
      { ...lixp, maskSelf: false },
      ...[0.95, 0.8, 0.6].map((alpha) => ({ ...lixp, alpha })),
      { ...lixp, temperatures: 'tau1=tau2' },
      { ...lixp, temperatures: 'tau2=tauCtx' },
      { ...lixp, learnTauCtx: false },
      ...['keys', 'values', 'both'].map((stopGrad) => ({ ...lixp, stopGrad })),
      ...['keys', 'values', 'both'].map((memoryNorm) => ({ ...lixp, memoryNorm })),
      ...['linear', 'mlp2', 'mlp3'].map((valueHead) => ({ ...lixp, valueHead })),
      { ...lixp, qkNorm: false },
      { ...lixp, residual: true },
      { ...lixp, memory: 'images+texts' },
      { ...lixp, context: 'separate' },
    ],
  },
  seeds: [0, 1, 2],
};

export default grid;
