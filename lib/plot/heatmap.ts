/**
 * A heat-map in the lab's plotting style (plot.ts): rows top to bottom as given,
 * one colour scale with its title. Introduced in notebook 03 for Llip's mixing
 * weights Φ (captions or heads × tokens).
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
