/**
 * Every LIxP ablation of the CVPR slides that is a switch of the loss, one at a
 * time from the paper's method (α = 0.9, three learned temperatures, self-mask,
 * QK-norm), beside SigLIP, at the `lab` preset, 3 seeds. The slides' zero-shot /
 * 16-shot numbers for each row are in LIXP_SLIDES (lib/runs/lixp-report.ts).
 * The memory rows (stale FIFO memory, active subset, two-stage) came later: the
 * first 22 variants ran first, so their ids and results stay as they were.
 * Size: 29 variants × 3 seeds = 87 runs. The first 66 took ≈ 2 min each with two
 * workers on the two cores (≈ 1.8 h); the 21 memory runs ≈ 40 min more (the stale
 * memory of 4096 rows makes the attention [256, 4352]).
 */
import type { Grid } from '../lib/runs/sweep';
import scale from './lixp-scale';

const lixp = { name: 'lixp' };

const grid: Grid = {
  name: 'lixp-ablations',
  preset: 'lab',
  // the scale study's evaluation, so the SigLIP and LIxP rows are its 1500-step runs
  // again: zero-shot every 500 steps, then the training-free few-shot suite
  base: scale.base,
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
      // memory ablations (lixp.ts documents how the slides' sizes scale to a batch of 256)
      ...[256, 1024, 4096].map((stale) => ({ ...lixp, stale })), // slides: 32K / 128K / 512K
      ...[8, 16, 64].map((activeSubset) => ({ ...lixp, activeSubset })), // slides: 1k / 2k / 8k of 32K
      { ...lixp, stages: 2 },
    ],
  },
  seeds: [0, 1, 2],
};

export default grid;
