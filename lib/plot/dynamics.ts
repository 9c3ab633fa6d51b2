/**
 * Training dynamics: figures of any per-step quantity (loss, t, b, norms,
 * accuracies) for several runs at once, one colour per method.
 */

import type { StepRecord } from '../train/loop';
import { barFigure, type Figure, lineFigure, logAxis, type Series, type Titles } from './plot';

export interface NamedRun {
  name: string; // legend entry
  method: string; // colour key (siglip, clip, lixp, llip, ...)
  history: StepRecord[];
  dash?: string; // plotly dash style: two curves of one method told apart
}

/** One line per run of `key` over steps; records without the key are skipped. */
export function historyFigure(
  runs: NamedRun[],
  key: string,
  titles: { title: string; yTitle: string; logY?: boolean },
): Figure {
  return lineFigure({
    title: titles.title,
    xTitle: 'training step',
    yTitle: titles.yTitle,
    logY: titles.logY,
    series: runs.map((r) => ({
      name: r.name,
      method: r.method,
      dash: r.dash,
      ...points(r.history, key),
    })),
  });
}

/** Points of `key` in a history (records without a finite value skipped). */
function points(history: StepRecord[], key: string): { x: number[]; y: number[] } {
  const pts = history.filter(
    (h) => typeof h[key] === 'number' && Number.isFinite(h[key] as number),
  );
  return { x: pts.map((h) => h.step), y: pts.map((h) => h[key] as number) };
}

/** Training loss (solid, every step) and held-out loss (dashed, `valKey` at eval steps) per run. */
export function trainValFigure(
  runs: NamedRun[],
  titles: { title: string; yTitle: string; logY?: boolean },
  keys: { train?: string; val?: string } = {},
): Figure {
  const [train, val] = [keys.train ?? 'loss', keys.val ?? 'valLoss'];
  return lineFigure({
    ...titles,
    xTitle: 'training step',
    series: runs.flatMap((r) => [
      { name: `${r.name} (training)`, method: r.method, ...points(r.history, train) },
      { name: `${r.name} (held-out)`, method: r.method, dash: 'dash', ...points(r.history, val) },
    ]),
  });
}

/** A group of lines a dropdown shows together (e.g. one run's scalars). */
export interface SeriesGroup {
  label: string;
  series: Series[];
}

/**
 * Several line figures in one, with a dropdown that shows one group at a time
 * (the first at start): for a student to pick the run. Static exports show the first.
 */
export function dropdownFigure(groups: SeriesGroup[], titles: Titles & { logY?: boolean }): Figure {
  const fig = lineFigure({ ...titles, series: groups.flatMap((g) => g.series) });
  const owner = groups.flatMap((g, i) => g.series.map(() => i));
  fig.data = fig.data.map((t, j) => ({ ...t, visible: owner[j] === 0 }));
  // a log axis fitted to each group's values (one group's range can be far narrower than all)
  const yaxis = (g: SeriesGroup) =>
    logAxis(
      titles.yTitle,
      g.series.flatMap((s) => s.y),
    );
  const buttons = groups.map((g, i) => ({
    label: g.label,
    method: 'update',
    args: [{ visible: owner.map((o) => o === i) }, titles.logY ? { yaxis: yaxis(g) } : {}],
  }));
  const menu = { buttons, x: 1, xanchor: 'right', y: 1.12, yanchor: 'bottom', showactive: true };
  fig.layout = {
    ...fig.layout,
    updatemenus: [menu],
    ...(titles.logY && groups.length ? { yaxis: yaxis(groups[0]) } : {}),
  };
  return fig;
}

/**
 * Bars of `keys` (e.g. zero-shot per task) for each run at one evaluation step,
 * with a slider over the steps: for a student to pick the step. Starts at the last.
 */
export function stepSliderFigure(
  runs: NamedRun[],
  keys: string[],
  titles: Titles & { labels?: string[] },
): Figure {
  const steps = [
    ...new Set(runs.flatMap((r) => r.history.filter((h) => keys[0] in h).map((h) => h.step))),
  ].sort((a, b) => a - b);
  const at = (r: NamedRun, s: number) => {
    const h = r.history.find((x) => x.step === s);
    return keys.map((k) => (h && typeof h[k] === 'number' ? (h[k] as number) : null));
  };
  const last = steps[steps.length - 1];
  const fig = barFigure({
    ...titles,
    categories: titles.labels ?? keys,
    series: runs.map((r) => ({ name: r.name, method: r.method, values: at(r, last) as number[] })),
  });
  const slider = {
    active: steps.length - 1,
    currentvalue: { prefix: 'training step ' },
    pad: { t: 70 },
    steps: steps.map((s) => ({
      label: String(s),
      method: 'restyle',
      args: [{ y: runs.map((r) => at(r, s)) }],
    })),
  };
  fig.layout = {
    ...fig.layout,
    sliders: [slider],
    height: 520,
    margin: { l: 70, r: 20, t: 60, b: 150 },
  };
  return fig;
}

/** Greek names of the objectives' learnable scalars, as the papers write them. */
export const SCALAR_NAMES: Record<string, string> = {
  t: 't (scale)',
  b: 'b (bias)',
  tau1: 'τ1 (base loss scale)',
  tau2: 'τ2 (contextual loss scale)',
  tauCtx: 'τctx (context temperature)',
  b1: 'b1 (base loss bias)',
  b2: 'b2 (contextual loss bias)',
};

/** Dash per scalar within one run's group (the colour is the run's method). */
const SCALAR_DASHES = ['solid', 'dash', 'dot', 'dashdot'];

/**
 * One dropdown group per run: the `keys` its history has (e.g. its scales), each
 * scalar in the run's method colour with its own dash, named as in SCALAR_NAMES.
 */
export function scalarGroups(runs: NamedRun[], keys: string[]): SeriesGroup[] {
  return runs
    .map((r) => ({
      label: r.name,
      series: keys
        .filter((k) => r.history.some((h) => typeof h[k] === 'number'))
        .map((k) => ({
          name: `${r.name}: ${SCALAR_NAMES[k] ?? k}`,
          method: r.method, // the run's colour, as in every other figure
          dash: SCALAR_DASHES[keys.indexOf(k) % SCALAR_DASHES.length], // its scalars told apart by the dash
          ...points(r.history, k),
        })),
    }))
    .filter((g) => g.series.length > 0);
}
