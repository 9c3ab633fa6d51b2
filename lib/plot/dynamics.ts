/**
 * Training dynamics: figures of any per-step quantity (loss, t, b, norms,
 * accuracies) for several runs at once, one colour per method.
 */

import type { StepRecord } from '../train/loop';
import { type Figure, lineFigure } from './plot';

export interface NamedRun {
  name: string; // legend entry
  method: string; // colour key (siglip, clip, lixp, llip, ...)
  history: StepRecord[];
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
    series: runs.map((r) => {
      const pts = r.history.filter(
        (h) => typeof h[key] === 'number' && Number.isFinite(h[key] as number),
      );
      return {
        name: r.name,
        method: r.method,
        x: pts.map((h) => h.step),
        y: pts.map((h) => h[key] as number),
      };
    }),
  });
}
