/**
 * What notebooks 03 and 04 read back: the Llip grids' results tables summarised
 * over seeds (or null with the command that makes them), the ladder rung a run's
 * objective section stands for, the paper's reported numbers, and the spectrum
 * of one run at each of its checkpoints.
 */
import { covarianceSpectrum, effectiveRank, spectrumFeatures } from '../eval/spectrum';
import type { Model } from '../objectives/model';
import { atCheckpoints } from './checkpoint';

/** The rungs of the paper's Figure 3 as the lab runs them (llip-ladder grid), in order. */
export const LADDER = [
  'SigLIP (MAP pooling)',
  'SigLIP (one token)',
  '+ registers',
  '+ average',
  '+ learned average',
  'Llip',
] as const;

/**
 * The rung an objective section stands for (an object, or the JSON text the
 * results table stores for an object-valued axis).
 */
export function rungLabel(objective: unknown): string {
  const o = (typeof objective === 'string' ? JSON.parse(objective) : objective) as {
    name: string;
    mixing?: string;
    mixtureTokens?: number;
  };
  if (o.name !== 'llip') return o.name === 'siglip' ? LADDER[0] : o.name;
  if (o.mixing === 'first') return o.mixtureTokens === 1 ? LADDER[1] : LADDER[2];
  return { average: LADDER[3], learned: LADDER[4], text: LADDER[5] }[o.mixing ?? 'text'] ?? 'Llip';
}

/** Numbers the Llip paper reports (ViT-B/32 on MetaCLIP data, Table 1; τ = 5, K = 64). */
export const LLIP_PAPER = {
  table1: {
    siglip: { zeroShot22: 63.5, imagenet: 67.3 },
    llip64: { zeroShot22: 67.5, imagenet: 70.4 },
  },
  figure3: 'registers ≈ SigLIP; + average: a large gain; learned average ≈ average; Llip best',
  figure6a: 'ImageNet zero-shot rises with K (1 … 64) at τ = 8',
  figure6b: 'robust over τ at K = 64, degrades for large τ',
  figure7:
    'with the 49 patch tokens in the cross-attention too, accuracy rises with K; K = 32 mixture tokens (Figure 6) beat the 49 patch tokens + K = 1 (τ = 1)',
  figure5: 'Llip’s spectrum decays slowest, then learned average, then SigLIP',
};

export { gridSummary, hasGrid, type SummaryRow } from './results';

export interface CheckpointSpectrum {
  step: number;
  singularValues: Float32Array;
  effectiveRank: number;
}

/**
 * The covariance spectrum of `model`'s visual features on `images`, with the
 * weights of each numbered checkpoint in `dir` that a run of `config` wrote
 * (oldest first); the model's own weights are put back afterwards.
 */
export function checkpointSpectra(
  model: Model,
  dir: string,
  config: unknown,
  images: Float32Array,
): CheckpointSpectrum[] {
  return atCheckpoints(model.params, dir, config, (step) => {
    const x = spectrumFeatures(model, images);
    const s = covarianceSpectrum(x);
    x.dispose();
    return { step, singularValues: s, effectiveRank: effectiveRank(s) };
  });
}
