/**
 * Colour scales in the lab's plotting style (plot.ts): a heat-map (rows top to
 * bottom as given, one colour scale with its title; notebook 03 for Llip's
 * mixing weights Φ), and line series shaded along a sequence (checkpoints,
 * K, τ; notebook 04), where per-method colours do not apply.
 */
import { type Figure, lineFigure, type Titles } from './plot';

export interface HeatmapOptions extends Titles {
  z: number[][]; // rows × columns
  x: string[]; // column labels
  y: string[]; // row labels, drawn top to bottom
  zmin?: number;
  zmax?: number;
  colorTitle?: string;
}

export function heatmapFigure(o: HeatmapOptions): Figure {
  const { layout } = lineFigure({ title: o.title, xTitle: o.xTitle, yTitle: o.yTitle, series: [] });
  const base = layout as Record<string, Record<string, unknown>>;
  const trace = {
    type: 'heatmap',
    z: o.z,
    x: o.x,
    y: o.y,
    zmin: o.zmin,
    zmax: o.zmax,
    colorscale: 'Viridis',
    colorbar: { title: { text: o.colorTitle ?? '' } },
  };
  const height = Math.max(300, 120 + 26 * o.y.length);
  return {
    data: [trace],
    layout: {
      ...base,
      height,
      showlegend: false,
      xaxis: { ...base.xaxis, type: 'category', showgrid: false },
      yaxis: { ...base.yaxis, type: 'category', autorange: 'reversed', showgrid: false },
    },
  };
}

/** Viridis at nine evenly spaced stops (dark = first, yellow = last). */
const VIRIDIS = [
  '#440154',
  '#472d7b',
  '#3b528b',
  '#2c728e',
  '#21918c',
  '#28ae80',
  '#5ec962',
  '#addc30',
  '#fde725',
];

/** The figure with its traces recoloured in order along viridis (first dark, last yellow). */
export function shadeSeries(fig: Figure): Figure {
  const n = fig.data.length;
  const data = fig.data.map((t, i) => {
    const color = VIRIDIS[n < 2 ? 0 : Math.round((i / (n - 1)) * (VIRIDIS.length - 1))];
    const line = (t as { line?: object }).line ?? {};
    return { ...t, line: { ...line, color }, marker: { color } };
  });
  return { data, layout: fig.layout };
}
