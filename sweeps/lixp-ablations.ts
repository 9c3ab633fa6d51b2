/**
 * Every LIxP ablation of the CVPR slides that is a switch of the loss, one at a
 * time from the paper's method (α = 0.9, three learned temperatures, self-mask,
 * QK-norm), beside SigLIP, at the `lab` preset, 3 seeds. The slides' zero-shot /
 * 16-shot numbers for each row are in notebook 02 and the issue. Not yet in the
 * grid: the stale memory of past batches, its active subset and the two-stage
 * variant (they need state across steps; see the LIxP issue's notes).
 * Size: 22 variants × 3 seeds = 66 runs ≈ 3 min each with one worker (lixp-scale's
 * 1500-step runs: 134–147 s of training + the suite) ≈ 3.3 h with one worker; two
 * workers on the two cores ≈ 2 h.
 */
import type { Grid } from '../lib/runs/sweep';

const lixp = { name: 'lixp' };

const grid: Grid = {
  name: 'lixp-ablations',
  preset: 'lab',
  // the scale study's evaluation (sweeps/lixp-scale.ts), so the SigLIP and LIxP rows
  // are its 1500-step runs again: zero-shot every 500 steps, then the training-free
  // few-shot suite, k = 1 … 64, 5 episodes
  base: {
    eval: {
      every: 500,
      supportPerClass: 128,
      shots: [1, 2, 4, 8, 16, 32, 64],
      episodes: 5,
      fewShot: {},
    },
  },
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
