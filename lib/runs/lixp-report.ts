/**
 * What notebook 02 reads back about LIxP: the slides' numbers for every row of
 * their ablation tables, the label an objective section stands for in those
 * tables, and the lixp-scale / lixp-ablations grids summarised over seeds
 * (null when a grid has not been run; notebook 02 then prints the command), and
 * the representational shift of a run at each of its checkpoints.
 */
import { describeDifference } from '../config/diff';
import { imageSide } from '../eval/evaluate';
import { FEWSHOT_METHODS, type FewShotMethod, type FewShotRow } from '../eval/fewshot-suite';
import { representationalShift, type Shift, type ShiftOptions } from '../eval/shift';
import { lixp } from '../objectives/lixp';
import type { Model } from '../objectives/model';
import { atCheckpoints } from './checkpoint';
import { gridSummary, type SummaryRow } from './results';

/** Zero-shot / 16-shot of the CVPR slides' ablation tables (ViT-B/16, their benchmark means). */
export const LIXP_SLIDES: Record<string, { zeroShot: number; shot16: number }> = {
  siglip: { zeroShot: 51.0, shot16: 60.1 },
  lixp: { zeroShot: 50.5, shot16: 64.1 },
  'maskSelf=false': { zeroShot: 50.9, shot16: 60.5 },
  'alpha=0.95': { zeroShot: 50.8, shot16: 62.5 },
  'alpha=0.8': { zeroShot: 50.0, shot16: 63.8 },
  'alpha=0.6': { zeroShot: 48.7, shot16: 61.5 },
  'temperatures=tau1=tau2': { zeroShot: 47.8, shot16: 61.8 },
  'temperatures=tau2=tauCtx': { zeroShot: 50.4, shot16: 60.2 },
  'learnTauCtx=false': { zeroShot: 47.1, shot16: 59.4 },
  'stopGrad=keys': { zeroShot: 49.6, shot16: 62.7 },
  'stopGrad=values': { zeroShot: 43.8, shot16: 58.7 },
  'stopGrad=both': { zeroShot: 44.4, shot16: 56.5 },
  'memoryNorm=keys': { zeroShot: 46.8, shot16: 57.1 },
  'memoryNorm=values': { zeroShot: 48.5, shot16: 62.3 },
  'memoryNorm=both': { zeroShot: 48.3, shot16: 58.2 },
  'valueHead=linear': { zeroShot: 50.2, shot16: 62.8 },
  'valueHead=mlp2': { zeroShot: 49.8, shot16: 61.1 },
  'valueHead=mlp3': { zeroShot: 49.1, shot16: 60.8 },
  'qkNorm=false': { zeroShot: 48.9, shot16: 61.7 },
  'residual=true': { zeroShot: 49.2, shot16: 59.2 },
  'memory=images+texts': { zeroShot: 47.9, shot16: 61.4 },
  'context=separate': { zeroShot: 48.8, shot16: 63.2 },
  // memory ablations, the slides' sizes scaled from their 32K batch to the lab's 256 (lixp.ts)
  'stale=256': { zeroShot: 45.9, shot16: 59.7 }, // + stale 32K
  'stale=1024': { zeroShot: 46.9, shot16: 60.5 }, // + stale 128K
  'stale=4096': { zeroShot: 47.2, shot16: 60.7 }, // + stale 512K
  'activeSubset=8': { zeroShot: 50.7, shot16: 59.9 }, // subset 1k of 32K
  'activeSubset=16': { zeroShot: 50.5, shot16: 62.9 }, // subset 2k
  'activeSubset=64': { zeroShot: 50.3, shot16: 63.9 }, // subset 8k
  'stages=2': { zeroShot: 50.5, shot16: 62.0 }, // two-stage
};

/**
 * The row an objective section stands for: 'siglip', 'lixp' (the paper's method),
 * or the one field that differs from it ('stopGrad=values'). Accepts the JSON
 * text the results table stores for an object-valued axis.
 */
export function ablationLabel(objective: unknown): string {
  const o = (typeof objective === 'string' ? JSON.parse(objective) : objective) as {
    name: string;
  };
  if (o.name !== 'lixp') return o.name;
  const diff = describeDifference({ ...lixp.defaults, ...o }, lixp.defaults, 'a', 'b');
  if (diff === null) return 'lixp';
  const field = /at '([^']+)'/.exec(diff)?.[1] ?? '?';
  return `${field}=${(o as Record<string, unknown>)[field]}`;
}

/** The training-free methods whose mean is the "16-shot" column (the linear probe is trained). */
export const TRAINING_FREE: FewShotMethod[] = FEWSHOT_METHODS.filter(
  (m) => m !== 'zero-shot' && m !== 'linear-probe',
);

/**
 * A grid's few-shot curves over seeds, one FewShotRow list per group of `by`
 * (mean ± 95% CI over seeds of each run's suite average), or null when absent.
 */
export function fewShotCurves(
  grid: string,
  by: string[],
  ks = [1, 2, 4, 8, 16, 32, 64],
): Map<string, FewShotRow[]> | null {
  const out = new Map<string, FewShotRow[]>();
  const add = (method: FewShotMethod, k: number, metric: string) => {
    const rows = gridSummary(grid, by, metric);
    if (rows === null) return false;
    for (const r of rows) {
      const key = by.map((b) => String(r[b])).join(' · ');
      const list = out.get(key) ?? [];
      list.push({ task: key, method, k, mean: r.mean, std: r.std, n: r.n, ci95: r.ci95 });
      out.set(key, list);
    }
    return true;
  };
  if (!add('zero-shot', 0, 'zeroShot')) return null;
  for (const m of FEWSHOT_METHODS.filter((x) => x !== 'zero-shot'))
    for (const k of ks) add(m, k, `fs.${m}.${k}`);
  return out;
}

/** Mean over the training-free methods at k shots of one group's curves (the slides' "16-shot"). */
export function trainingFreeMean(rows: FewShotRow[], k: number): number {
  const xs = rows.filter((r) => r.k === k && TRAINING_FREE.includes(r.method)).map((r) => r.mean);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}

/**
 * Zero-shot and the training-free 16-shot mean of each ablation row beside the
 * slides', in the slides' order, with each row's 16-shot change from the paper's
 * method (LIxP) in the lab and in the slides, and whether the two point the same
 * way (means only; the report's rule adds the CIs).
 */
export function ablationRows(grid = 'lixp-ablations'): Record<string, string>[] | null {
  const curves = fewShotCurves(grid, ['objective'], [16]);
  if (!curves) return null;
  const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '');
  const tenth = (x: number) => Math.round(x * 10) / 10 || 0; // shown to 0.1 point; −0.0 is 0
  const signed = (x: number) =>
    Number.isFinite(x) ? `${tenth(x) > 0 ? '+' : ''}${tenth(x).toFixed(1)}` : '';
  const byLabel = new Map([...curves.entries()].map(([o, rows]) => [ablationLabel(o), rows]));
  const lixpLab = 100 * trainingFreeMean(byLabel.get('lixp') ?? [], 16);
  const order = Object.keys(LIXP_SLIDES);
  const labels = [...byLabel.keys()].sort((x, y) => order.indexOf(x) - order.indexOf(y));
  return labels.map((label) => {
    const rows = byLabel.get(label)!;
    const zs = rows.find((r) => r.method === 'zero-shot');
    const paper = LIXP_SLIDES[label];
    const shot16 = 100 * trainingFreeMean(rows, 16);
    const [dLab, dPaper] = [shot16 - lixpLab, paper ? paper.shot16 - LIXP_SLIDES.lixp.shot16 : NaN];
    const compared = label !== 'lixp' && Number.isFinite(dLab) && Number.isFinite(dPaper);
    return {
      row: label,
      'zero-shot (lab)': zs ? `${pct(zs.mean)} ± ${pct(zs.ci95)}` : '',
      '16-shot (lab)': shot16.toFixed(1),
      'zero-shot (slides)': paper ? paper.zeroShot.toFixed(1) : '',
      '16-shot (slides)': paper ? paper.shot16.toFixed(1) : '',
      'Δ16 vs LIxP (lab)': label === 'lixp' ? '' : signed(dLab),
      'Δ16 vs LIxP (slides)': label === 'lixp' ? '' : signed(dPaper),
      'same sign': compared
        ? Math.sign(tenth(dLab)) === Math.sign(tenth(dPaper))
          ? 'yes'
          : 'no'
        : '',
    };
  });
}

/**
 * Post-training beside training from scratch: zero-shot and the training-free
 * 16-shot mean of the scale study's 1500-step SigLIP and LIxP runs and of their
 * 300-step continuations (lixp-post: SigLIP → LIxP, and SigLIP → SigLIP for equal
 * compute); null until both grids are in data/results.
 */
export function postTrainingRows(): Record<string, string>[] | null {
  const scale = fewShotCurves('lixp-scale', ['objective.name', 'steps'], [16]);
  const post = fewShotCurves('lixp-post', ['objective.name'], [16]);
  if (!scale || !post) return null;
  const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '');
  const row = (label: string, rows: FewShotRow[] | undefined) => {
    const zs = rows?.find((r) => r.method === 'zero-shot');
    return {
      training: label,
      seeds: String(zs?.n ?? 0),
      'zero-shot': zs ? `${pct(zs.mean)} ± ${pct(zs.ci95)}` : '',
      '16-shot (training-free mean)': rows ? pct(trainingFreeMean(rows, 16)) : '',
    };
  };
  return [
    row('SigLIP, 1500 steps', scale.get('siglip · 1500')),
    row('LIxP from scratch, 1500 steps', scale.get('lixp · 1500')),
    row('SigLIP 1500 + SigLIP 300', post.get('siglip')),
    row('SigLIP 1500 + LIxP 300 (post-training)', post.get('lixp')),
  ];
}

export type { SummaryRow };

/**
 * The blog's headline number: how many shots `base` needs to reach `other`'s
 * accuracy at k shots with `method`, interpolated linearly in log2(k) between the
 * measured shot counts; null when `base` never reaches it within its range.
 */
export function shotsToMatch(
  base: FewShotRow[],
  other: FewShotRow[],
  method: FewShotMethod,
  k: number,
): number | null {
  const target = other.find((r) => r.method === method && r.k === k)?.mean;
  if (target === undefined) return null;
  const pts = base.filter((r) => r.method === method && r.k > 0).sort((a, b) => a.k - b.k);
  for (let i = 0; i < pts.length; i++) {
    if (pts[i].mean < target) continue;
    if (i === 0) return pts[0].k;
    const [a, b] = [pts[i - 1], pts[i]];
    const f = (target - a.mean) / (b.mean - a.mean);
    return 2 ** (Math.log2(a.k) + f * (Math.log2(b.k) - Math.log2(a.k)));
  }
  return null;
}

/**
 * The representational shift (eval/shift.ts) of `model`'s image embeddings of
 * `images` (identities `identity`) at each numbered checkpoint a run of `config`
 * wrote in `dir`. The contextualiser's τctx is `opts.logTauCtx` when given (SigLIP,
 * which has none), else the model's own learned log τctx at that checkpoint (LIxP).
 */
export function checkpointShift(
  model: Model,
  dir: string,
  config: unknown,
  images: Float32Array,
  identity: Int32Array,
  opts: Omit<ShiftOptions, 'logTauCtx'> & { logTauCtx?: number },
): Array<Shift & { step: number; logTauCtx: number }> {
  return atCheckpoints(model.params, dir, config, (step) => {
    const own = model.params.logTauCtx;
    const logTauCtx = opts.logTauCtx ?? own?.dataSync()[0];
    if (logTauCtx === undefined)
      throw new Error('checkpointShift: the model has no τctx; pass opts.logTauCtx');
    const side = imageSide(model, images);
    try {
      return {
        step,
        logTauCtx,
        ...representationalShift(side.image!, identity, { ...opts, logTauCtx }),
      };
    } finally {
      for (const t of Object.values(side)) t?.dispose();
    }
  });
}
