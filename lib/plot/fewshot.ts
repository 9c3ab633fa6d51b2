/**
 * Few-shot figures and the table in the shape of the LIxP paper's Table 1.
 *
 * Colours: few-shot methods are another axis than training objectives, so they
 * have their own palette. A colour always means what its legend lists: in
 * accuracy-vs-shots figures of one model it is the few-shot method
 * (FEWSHOT_COLORS, ColorBrewer Dark2, zero-shot grey); in figures that compare
 * models it is the model's objective (METHOD_COLORS: SigLIP blue, CLIP orange …)
 * with the few-shot methods on the x axis. The two palettes share no hex value
 * and never meet in one figure.
 */
import type { FewShotMethod, FewShotRow } from '../eval/fewshot-suite';
import { axis, barFigure, baseLayout, type Figure } from './plot';

export const FEWSHOT_COLORS: Record<FewShotMethod, string> = {
  'zero-shot': '#666666',
  prototype: '#1b9e77',
  tip: '#d95f02',
  'tip-cv': '#7570b3',
  'knn-plurality': '#e7298a',
  'knn-rank': '#66a61e',
  'knn-softmax': '#e6ab02',
  'linear-probe': '#a6761d',
};

/** Row names as in the paper's Table 1 (and Table 2's linear probe). */
export const FEWSHOT_LABELS: Record<FewShotMethod, string> = {
  'zero-shot': 'Zero-shot',
  prototype: 'Prototypical',
  tip: 'Default Tip',
  'tip-cv': 'XVal Tip',
  'knn-plurality': 'Plurality NN',
  'knn-rank': 'Rank NN',
  'knn-softmax': 'Softmax NN',
  'linear-probe': 'Linear probe',
};

/** Position of k shots on the log-2 axis, with 0 shots one step left of k = 1. */
export const shotX = (k: number) => (k === 0 ? 0 : 1 + Math.log2(k));

function rgba(hex: string, a: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

/**
 * Accuracy vs shots for one model's summary rows (one task's or the suite's):
 * a line per method with its 95% CI band, zero-shot as a grey dotted level
 * from its point at 0 shots.
 */
export function fewShotFigure(
  rows: FewShotRow[],
  opts: { title: string; methods?: FewShotMethod[]; yTitle?: string },
): Figure {
  const ks = [...new Set(rows.map((r) => r.k))].sort((a, b) => a - b);
  const methods = opts.methods ?? [...new Set(rows.map((r) => r.method))];
  const data: object[] = [];
  const zs = rows.find((r) => r.method === 'zero-shot');
  if (zs && methods.includes('zero-shot')) {
    const x = [0, shotX(ks[ks.length - 1])];
    const line = { color: FEWSHOT_COLORS['zero-shot'], width: 2, dash: 'dot' };
    data.push({
      type: 'scatter',
      mode: 'lines+markers',
      name: FEWSHOT_LABELS['zero-shot'],
      x,
      y: [zs.mean, zs.mean],
      line,
      marker: { size: [8, 0] },
    });
  }
  for (const m of methods.filter((m) => m !== 'zero-shot')) {
    const pts = rows.filter((r) => r.method === m && r.k > 0).sort((a, b) => a.k - b.k);
    if (!pts.length) continue;
    const x = pts.map((r) => shotX(r.k));
    const ci = pts.map((r) => (Number.isFinite(r.ci95) ? r.ci95 : 0));
    const band = [
      ...pts.map((r, i) => r.mean + ci[i]),
      ...pts.map((r, i) => r.mean - ci[i]).reverse(),
    ];
    const fill = rgba(FEWSHOT_COLORS[m], 0.18);
    data.push({
      type: 'scatter',
      mode: 'lines',
      x: [...x, ...[...x].reverse()],
      y: band,
      fill: 'toself',
      fillcolor: fill,
      line: { width: 0 },
      hoverinfo: 'skip',
      showlegend: false,
      legendgroup: m,
    });
    const line = { color: FEWSHOT_COLORS[m], width: 2 };
    data.push({
      type: 'scatter',
      mode: 'lines+markers',
      name: FEWSHOT_LABELS[m],
      x,
      y: pts.map((r) => r.mean),
      line,
      legendgroup: m,
    });
  }
  const layout = baseLayout({
    title: opts.title,
    xTitle: 'shots per class (0 = zero-shot)',
    yTitle: opts.yTitle ?? 'accuracy (mean ± 95% CI over episodes)',
  });
  const tickvals = ks.map(shotX);
  layout.xaxis = { ...axis('shots per class (0 = zero-shot)'), tickvals, ticktext: ks.map(String) };
  layout.legend = { ...(layout.legend as object), x: 1.02, y: 1, xanchor: 'left' };
  layout.width = 860;
  return { data, layout };
}

/** One model's summary rows (usually `suiteAverage`), its legend name and colour key. */
export interface ModelRows {
  name: string;
  /** objective colour key: siglip, clip, lixp, llip */
  method: string;
  rows: FewShotRow[];
}

const TRAINING_FREE = (m: FewShotMethod) => m !== 'zero-shot' && m !== 'linear-probe';
const pct = (x: number) => (100 * x).toFixed(1);
const signed = (x: number) => `${x >= 0 ? '+' : '−'}${pct(Math.abs(x))}`;

/** The mean ± CI of `method` at `k` (zero-shot: at 0), or undefined. */
function cell(m: ModelRows, method: FewShotMethod, k: number): FewShotRow | undefined {
  return m.rows.find((r) => r.method === method && r.k === (method === 'zero-shot' ? 0 : k));
}

/**
 * The LIxP paper's Table 1 shape at `k` shots: methods as rows, models as
 * columns (accuracy in %, mean ± 95% CI), each model after the first with its
 * gain over the first, and a last row of the average gain over the
 * training-free few-shot methods (as in the paper: zero-shot and the trained
 * linear probe left out).
 */
export function table1Rows(models: ModelRows[], opts: { k: number }): Record<string, string>[] {
  const methods = [...new Set(models.flatMap((m) => m.rows.map((r) => r.method)))];
  const [base, ...others] = models;
  const gains: number[][] = others.map(() => []);
  const rows = methods.map((method) => {
    const row: Record<string, string> = { method: FEWSHOT_LABELS[method] };
    const b = cell(base, method, opts.k);
    row[base.name] = b ? `${pct(b.mean)} ± ${pct(b.ci95)}` : '';
    others.forEach((m, j) => {
      const c = cell(m, method, opts.k);
      row[m.name] = c ? `${pct(c.mean)} ± ${pct(c.ci95)}` : '';
      row[`${m.name} gain`] = b && c ? signed(c.mean - b.mean) : '';
      if (b && c && TRAINING_FREE(method)) gains[j].push(c.mean - b.mean);
    });
    return row;
  });
  if (others.length) {
    const avg: Record<string, string> = { method: 'Average gain', [base.name]: '' };
    others.forEach((m, j) => {
      avg[m.name] = '';
      avg[`${m.name} gain`] = signed(
        gains[j].reduce((a, g) => a + g, 0) / Math.max(gains[j].length, 1),
      );
    });
    rows.push(avg);
  }
  return rows;
}

/** Table 1 as grouped bars: few-shot methods on the x axis, one bar per model (its objective's colour), 95% CI. */
export function table1Figure(models: ModelRows[], opts: { k: number; title: string }): Figure {
  const methods = [...new Set(models.flatMap((m) => m.rows.map((r) => r.method)))];
  const fig = barFigure({
    title: opts.title,
    xTitle: `method (${opts.k} shots per class; zero-shot: none)`,
    yTitle: 'accuracy (mean ± 95% CI)',
    categories: methods.map((m) => FEWSHOT_LABELS[m]),
    series: models.map((m) => ({
      name: m.name,
      method: m.method,
      values: methods.map((method) => cell(m, method, opts.k)?.mean ?? Number.NaN),
      errors: methods.map((method) => cell(m, method, opts.k)?.ci95 ?? 0),
    })),
  });
  (fig.layout as Record<string, unknown>).width = 860;
  return fig;
}

/** Summary rows as a table: one row per method, one column per k ("62.4 ± 0.3", %). */
export function shotsTableRows(rows: FewShotRow[]): Record<string, string>[] {
  const ks = [...new Set(rows.map((r) => r.k))].sort((a, b) => a - b);
  const methods = [...new Set(rows.map((r) => r.method))];
  return methods.map((m) => {
    const row: Record<string, string> = { method: FEWSHOT_LABELS[m] };
    for (const k of ks) {
      const r = rows.find((x) => x.method === m && x.k === k);
      row[`k=${k}`] = r ? `${pct(r.mean)} ± ${pct(r.ci95)}` : '';
    }
    return row;
  });
}
