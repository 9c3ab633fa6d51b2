/**
 * The papers' claims that the lab tests, as data (issue 15): each names the
 * paper's number and what it measures, the grid of data/results/ whose runs give
 * ours, the metric, the two groups of runs compared (A − B) and the direction the
 * paper expects. lib/runs/report.ts turns them into verdicts by one rule.
 */
import { FEWSHOT_METHODS } from '../eval/fewshot-suite';
import { ablationLabel, LIXP_SLIDES, TRAINING_FREE } from './lixp-report';
import { LADDER, LLIP_PAPER, rungLabel } from './llip-report';
import type { Row } from './results';

/** What the paper says about A − B: A larger, A smaller, or A ≈ B (within the rule's margin). */
export type Expect = 'greater' | 'less' | 'equal';

export interface Claim {
  id: string;
  paper: 'LIxP' | 'Llip';
  /** the claim in words, A and B named */
  claim: string;
  /** the paper's number(s) and what they measure */
  paperSays: string;
  grid: string;
  /** a metric of the table, or several whose per-run mean is taken (the training-free mean) */
  metric: string | readonly string[];
  /** group labels of the grid (GRID_GROUPS) */
  a: string;
  /** null: A alone against 0 */
  b: string | null;
  expect: Expect;
  /** claims of one order (a ladder, a curve) share a group; its verdict comes from its pairs */
  group?: string;
  /** how to fill it when not measured (default: `npm run sweep -- <grid>`) */
  fill?: string;
}

const cell = (v: unknown) =>
  v === true || v === 'true' ? true : v === false || v === 'false' ? false : v;

/** The label of a run's group in each grid: what a claim's `a` and `b` name. */
export const GRID_GROUPS: Record<string, (row: Row) => string> = {
  'lixp-scale': (r) => `${r['objective.name']}@${r.steps}`,
  'lixp-ablations': (r) => ablationLabel(r.objective),
  'lixp-post': (r) => `SigLIP + ${r['objective.name'] === 'lixp' ? 'LIxP' : 'SigLIP'}`,
  'llip-ladder': (r) => rungLabel(r.objective),
  'llip-k': (r) => `K=${r['objective.mixtureTokens']}`,
  'llip-tau': (r) => `tau=${r['objective.tau']}`,
  'llip-patches': (r) =>
    `${cell(r['objective.patchTokens']) === true ? 'patches + ' : ''}K=${r['objective.mixtureTokens']}`,
};

/** The slides' "16-shot" column: the mean of the six training-free methods at 16 shots. */
export const TRAINING_FREE_16 = TRAINING_FREE.map((m) => `fs.${m}.16`);

/** Human names of metrics in the report. */
export function metricName(metric: string | readonly string[]): string {
  if (
    metric === TRAINING_FREE_16 ||
    (Array.isArray(metric) && metric.join() === TRAINING_FREE_16.join())
  )
    return 'training-free mean, 16 shots';
  if (typeof metric !== 'string') return `mean of ${metric.join(', ')}`;
  const fs = /^fs\.(.+)\.(\d+)$/.exec(metric);
  if (fs) return `${fs[1]}, ${fs[2]} shots`;
  return (
    { zeroShot: 'zero-shot', effectiveRank: 'effective rank', tauCtxDrop: 'τctx drop' }[metric] ??
    metric
  );
}

/** Table 1 of the slides, ViT-B/16 on 6B examples: LIxP's gain over SigLIP at 16 shots. */
const TABLE1_GAIN: Record<string, number> = {
  prototype: 3.4,
  tip: 4.3,
  'tip-cv': 1.6,
  'knn-plurality': 2.3,
  'knn-rank': 1.8,
  'knn-softmax': 2.6,
};
const SCALE = 3000; // the scale study's longest budget (steps)
const slides = (row: string) =>
  `${LIXP_SLIDES[row].shot16} (16-shot, training-free mean; slides' ablation, ViT-B/16)`;
const vsLixp = (row: string, what: string, expect: Expect = 'greater'): Claim => ({
  id: `lixp.${row}`,
  paper: 'LIxP',
  claim: `${what}: LIxP beats ${row}`,
  paperSays: `LIxP ${slides('lixp')} vs ${slides(row).split(' (')[0]}`,
  grid: 'lixp-ablations',
  metric: TRAINING_FREE_16,
  a: 'lixp',
  b: row,
  expect,
});

const LIXP_CLAIMS: Claim[] = [
  ...FEWSHOT_METHODS.filter((m) => m in TABLE1_GAIN).map(
    (m): Claim => ({
      id: `lixp.table1.${m}`,
      paper: 'LIxP',
      claim: `LIxP beats SigLIP few-shot (${m}, 16 shots, ${SCALE} steps)`,
      paperSays: `+${TABLE1_GAIN[m]} points (Table 1, ViT-B/16, 6B examples)`,
      grid: 'lixp-scale',
      metric: `fs.${m}.16`,
      a: `lixp@${SCALE}`,
      b: `siglip@${SCALE}`,
      expect: 'greater',
      group: 'Table 1: every training-free method',
    }),
  ),
  {
    id: 'lixp.zeroshot-kept',
    paper: 'LIxP',
    claim: `LIxP keeps SigLIP's zero-shot accuracy (${SCALE} steps)`,
    paperSays: '−0.4 points (Table 1, ViT-B/16, 6B); slides 50.5 vs 51.0',
    grid: 'lixp-scale',
    metric: 'zeroShot',
    a: `lixp@${SCALE}`,
    b: `siglip@${SCALE}`,
    expect: 'equal',
  },
  {
    id: 'lixp.sample-efficiency',
    paper: 'LIxP',
    claim: `LIxP's sample efficiency: SigLIP needs more shots (prototype at 8 shots, ${SCALE} steps)`,
    paperSays: 'SigLIP needs 32 shots to match LIxP at 8 (4×; blog)',
    grid: 'lixp-scale',
    metric: 'fs.prototype.8',
    a: `lixp@${SCALE}`,
    b: `siglip@${SCALE}`,
    expect: 'greater',
  },
  vsLixp('maskSelf=false', 'masking self helps'),
  ...['alpha=0.95', 'alpha=0.8', 'alpha=0.6'].map((r) => ({
    ...vsLixp(r, 'α near 0.9 is best'),
    group: 'α = 0.9 is best',
  })),
  ...['temperatures=tau1=tau2', 'temperatures=tau2=tauCtx'].map((r) => ({
    ...vsLixp(r, 'coupling temperatures hurts'),
    group: 'coupling temperatures hurts',
  })),
  vsLixp('learnTauCtx=false', 'freezing τctx hurts'),
  {
    id: 'lixp.post-training',
    paper: 'LIxP',
    claim: 'post-training a SigLIP model with LIxP beats continuing SigLIP for as long (300 steps)',
    paperSays:
      'a short LIxP post-training phase (0.5B–1B examples) gives large few-shot gains (blog, Figure 4)',
    grid: 'lixp-post',
    metric: TRAINING_FREE_16,
    a: 'SigLIP + LIxP',
    b: 'SigLIP + SigLIP',
    expect: 'greater',
  },
  {
    id: 'lixp.stopgrad-values-vs-keys',
    paper: 'LIxP',
    claim: 'stop-gradient on values hurts more than on keys',
    paperSays: `${slides('stopGrad=keys')} for keys vs ${LIXP_SLIDES['stopGrad=values'].shot16} for values`,
    grid: 'lixp-ablations',
    metric: TRAINING_FREE_16,
    a: 'stopGrad=keys',
    b: 'stopGrad=values',
    expect: 'greater',
  },
  {
    id: 'lixp.tauctx-drops',
    paper: 'LIxP',
    claim: 'τctx starts high, then drops (its maximum over training minus its final value > 0)',
    paperSays: 'τctx starts high and drops at an inflection point (blog, training dynamics)',
    grid: 'lixp-scale',
    metric: 'tauCtxDrop',
    a: `lixp@${SCALE}`,
    b: null,
    expect: 'greater',
    // runs file tauCtxDrop since it was added; older runs: `--refile` from their folders
    fill: '`npm run sweep -- lixp-scale --refile` (files τctx from the runs’ histories)',
  },
];

const ladderPair = (a: string, b: string, expect: Expect): Claim => ({
  id: `llip.ladder.${LADDER.indexOf(a as never)}-${LADDER.indexOf(b as never)}`,
  paper: 'Llip',
  claim: `ladder: ${a} ${expect === 'equal' ? '≈' : expect === 'greater' ? '>' : '<'} ${b}`,
  paperSays: `Figure 3 (ViT-B/32, ImageNet zero-shot): ${LLIP_PAPER.figure3}`,
  grid: 'llip-ladder',
  metric: 'zeroShot',
  a,
  b,
  expect,
  group: 'ladder order: registers ≈ SigLIP < average ≈ learned average < Llip',
});

const K = [1, 4, 8, 16, 32, 64];
const PATCH_K = [1, 8, 32]; // sweeps/llip-patches.ts

const LLIP_CLAIMS: Claim[] = [
  {
    id: 'llip.beats-siglip',
    paper: 'Llip',
    claim: 'Llip beats SigLIP zero-shot',
    paperSays: `${LLIP_PAPER.table1.siglip.zeroShot22} → ${LLIP_PAPER.table1.llip64.zeroShot22} (Table 1, mean of 22 tasks, ViT-B/32)`,
    grid: 'llip-ladder',
    metric: 'zeroShot',
    a: LADDER[5],
    b: LADDER[0],
    expect: 'greater',
  },
  ladderPair(LADDER[2], LADDER[1], 'equal'),
  ladderPair(LADDER[3], LADDER[2], 'greater'),
  ladderPair(LADDER[4], LADDER[3], 'equal'),
  ladderPair(LADDER[5], LADDER[4], 'greater'),
  ...K.slice(1).map(
    (k, i): Claim => ({
      id: `llip.k.${k}-${K[i]}`,
      paper: 'Llip',
      claim: `zero-shot rises with K: K = ${k} > K = ${K[i]}`,
      paperSays: `Figure 6a (ViT-B/32, τ = 8): ${LLIP_PAPER.figure6a}`,
      grid: 'llip-k',
      metric: 'zeroShot',
      a: `K=${k}`,
      b: `K=${K[i]}`,
      expect: 'greater',
      group: 'accuracy rises with K',
    }),
  ),
  {
    id: 'llip.tau-large',
    paper: 'Llip',
    claim: 'large τ degrades: τ = 32 < τ = 5',
    paperSays: `Figure 6b (K = 64): ${LLIP_PAPER.figure6b}`,
    grid: 'llip-tau',
    metric: 'zeroShot',
    a: 'tau=32',
    b: 'tau=5',
    expect: 'less',
  },
  {
    id: 'llip.patches',
    paper: 'Llip',
    claim: 'K = 32 mixture tokens beat the patch tokens + K = 1',
    paperSays: `Figure 7 (τ = 1): ${LLIP_PAPER.figure7}`,
    grid: 'llip-patches',
    metric: 'zeroShot',
    a: 'K=32',
    b: 'patches + K=1',
    expect: 'greater',
  },
  ...PATCH_K.slice(1).map(
    (k, i): Claim => ({
      id: `llip.patches.k.${k}-${PATCH_K[i]}`,
      paper: 'Llip',
      claim: `with the patch tokens in, zero-shot rises with K: K = ${k} > K = ${PATCH_K[i]}`,
      paperSays: `Figure 7 (τ = 1): ${LLIP_PAPER.figure7}`,
      grid: 'llip-patches',
      metric: 'zeroShot',
      a: `patches + K=${k}`,
      b: `patches + K=${PATCH_K[i]}`,
      expect: 'greater',
      group: 'Figure 7: accuracy rises with K, patch tokens in',
    }),
  ),
  {
    id: 'llip.spectrum',
    paper: 'Llip',
    claim: 'Llip’s spectrum decays slower than SigLIP’s (higher effective rank)',
    paperSays: `Figure 5: ${LLIP_PAPER.figure5}`,
    grid: 'llip-ladder',
    metric: 'effectiveRank',
    a: LADDER[5],
    b: LADDER[0],
    expect: 'greater',
    // runs file their effective rank since it was added; older runs: `--refile` backfills it
    fill: '`npm run sweep -- llip-ladder --refile` (backfills each run’s effective rank)',
  },
];

/** Every claim the report tests, in report order. */
export const CLAIMS: Claim[] = [...LIXP_CLAIMS, ...LLIP_CLAIMS];
