/**
 * The Llip paper's Figure 3 on the lab's world: from SigLIP to Llip one change
 * at a time, each rung a config of the same code (objective.mixing), `lab`
 * preset, K = 16 mixture tokens (the lab's 16 patches; the paper adds 63 to 49),
 * τ = 5, 3 seeds. Rungs: the lab's SigLIP (MAP pooling, notebook 01); SigLIP on
 * one learned token through Llip's code (K = 1); + registers (K = 16, only the
 * first read); + average (Φ = 1/K); + learned average (one learned query);
 * Llip (the caption's query). Paper (ViT-B/32, ImageNet zero-shot): registers
 * ≈ SigLIP, average a large gain, learned ≈ average, Llip best (Table 1: 67.3 →
 * 70.4). Read back in notebook 03 §6.
 * Size, measured on the 2-core machine (14-step `lab` runs extrapolated to 1500
 * steps + 3 evaluations; load average ≈ 2 while measuring): SigLIP 173 s, one
 * token 168 s, registers 224 s, average 172 s, learned 184 s, Llip 407 s per
 * run; 6 rungs × 3 seeds = 18 runs ≈ 66 min with one worker, ≈ 35 min with two.
 */
import type { Grid } from '../lib/runs/sweep';

const llip = (over: Record<string, unknown>) => ({ name: 'llip', mixtureTokens: 16, ...over });

const grid: Grid = {
  name: 'llip-ladder',
  preset: 'lab',
  base: { eval: { every: 500 } },
  axes: {
    objective: [
      { name: 'siglip' },
      llip({ mixing: 'first', mixtureTokens: 1 }),
      llip({ mixing: 'first' }),
      llip({ mixing: 'average' }),
      llip({ mixing: 'learned' }),
      llip({ mixing: 'text' }),
    ],
  },
  seeds: [0, 1, 2],
};

export default grid;
