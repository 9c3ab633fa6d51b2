/**
 * Small DOM helpers for the views: elements, pixel thumbnails, bar lists,
 * heat-maps, a log-scale line chart and an arrow-key image grid. Plain DOM
 * and SVG, text kept in the page (screen readers and tests read it).
 */
import { IMAGE_SIZE, PIXELS } from '../../lib/data/types';

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;

/** An element with attributes (`on*` become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const urlCache = new WeakMap<Uint8Array, Map<number, string>>();

/** A PNG data URL of image `i` of 8-bit RGB pixels (cached). */
export function imageUrl(bytes: Uint8Array, i: number): string {
  let cache = urlCache.get(bytes);
  if (!cache) {
    cache = new Map();
    urlCache.set(bytes, cache);
  }
  let url = cache.get(i);
  if (!url) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = IMAGE_SIZE;
    const ctx = canvas.getContext('2d')!;
    const img = ctx.createImageData(IMAGE_SIZE, IMAGE_SIZE);
    for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++) {
      for (let c = 0; c < 3; c++) img.data[4 * p + c] = bytes[i * PIXELS + 3 * p + c];
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    url = canvas.toDataURL('image/png');
    cache.set(i, url);
  }
  return url;
}

/** An <img> of image `i`, `size` CSS pixels square, its caption as alt text. */
export function thumb(bytes: Uint8Array, i: number, size: number, alt: string): HTMLImageElement {
  return h('img', { class: 'px', src: imageUrl(bytes, i), width: size, height: size, alt });
}

export interface Bar {
  label: string;
  /** the bar's length in [0, 1] */
  value: number;
  /** the number(s) printed after it */
  text: string;
  top?: boolean;
  truth?: boolean;
}

/** Horizontal bars of length `value` ∈ [0, 1], their numbers as text; the top one and the truth marked. */
export function bars(items: Bar[]): HTMLElement {
  const box = h('div', { class: 'bars', role: 'list' });
  for (const b of items) {
    const cls = b.top ? 'top' : '';
    const pct = Math.max(0, Math.min(1, b.value)) * 100;
    const track = h(
      'div',
      { class: `track ${cls}`.trim() },
      h('div', { class: 'bar', style: `width:${pct}%` }),
    );
    box.append(
      h('span', { class: `${cls} ${b.truth ? 'truth' : ''}`.trim(), role: 'listitem' }, b.label),
      track,
      h('span', { class: cls }, b.text),
    );
  }
  return box;
}

/** Viridis, 9 stops (perceptually even, colour-blind safe). */
const VIRIDIS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Blue – white – red for signed differences. */
const DIVERGING = [
  [33, 102, 172],
  [146, 197, 222],
  [247, 247, 247],
  [244, 165, 130],
  [178, 24, 43],
];

function ramp(stops: number[][], t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c.join(',')})`;
}

/** Black or white, whichever reads on an `rgb(r,g,b)` background. */
function inkOn(bg: string): string {
  const [r, g, b] = (bg.match(/\d+/g) ?? ['0', '0', '0']).map(Number);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? '#000' : '#fff';
}

export const colour = {
  seq: (t: number) => ramp(VIRIDIS, t),
  div: (t: number) => ramp(DIVERGING, t),
};

export interface HeatOptions {
  rowLabels: (Node | string)[];
  colLabels: (Node | string)[];
  /** value → [0, 1] for the colour map */
  scale: (v: number) => number;
  map: (t: number) => string;
  cell: string; // CSS width of a cell
  rowHeight?: string; // CSS height of a row (default: the width)
  /** print the value in the cell (small maps) */
  digits?: number;
  /** cells to grey out (masked) */
  masked?: (r: number, c: number) => boolean;
  caption: string;
}

/** A heat-map as a CSS grid: header row and column, one cell per value (title: its value). */
export function heatmap(m: number[][], o: HeatOptions): HTMLElement {
  const cols = m[0]?.length ?? 0;
  const grid = h('div', {
    class: 'heat',
    role: 'img',
    'aria-label': o.caption,
    style: `grid-template-columns: max-content repeat(${cols}, ${o.cell}); grid-auto-rows: ${o.rowHeight ?? o.cell}`,
  });
  grid.append(h('span', {}));
  for (const c of o.colLabels) grid.append(h('span', { class: 'head' }, c));
  m.forEach((row, r) => {
    grid.append(h('span', { class: 'head' }, o.rowLabels[r]));
    row.forEach((v, c) => {
      const masked = o.masked?.(r, c) ?? false;
      const t = o.scale(v);
      const bg = masked ? '#bbb' : o.map(t);
      const fg = masked ? '#000' : inkOn(bg);
      const d = o.digits;
      const text =
        d !== undefined && !masked ? (Math.abs(v) < 0.5 * 10 ** -d ? 0 : v).toFixed(d) : '';
      grid.append(
        h(
          'span',
          { class: 'cell', style: `background:${bg};color:${fg}`, title: v.toFixed(4) },
          text,
        ),
      );
    });
  });
  return grid;
}

/** A colour ramp with its end labels. */
export function legend(map: (t: number) => string, lo: string, hi: string, what: string) {
  const stops = Array.from({ length: 11 }, (_, i) => map(i / 10)).join(',');
  return h(
    'div',
    { class: 'legend' },
    h('span', {}, what),
    h('span', {}, lo),
    h('span', { class: 'ramp', style: `background: linear-gradient(to right, ${stops})` }),
    h('span', {}, hi),
  );
}

export interface Series {
  label: string;
  values: number[];
  colour: string;
}

/** Lines on a log-y axis (spectra): index on x, decades marked on y. */
export function logLines(series: Series[], o: { width: number; height: number; title: string }) {
  const pad = { l: 90, r: 20, t: 20, b: 60 };
  const all = series.flatMap((x) => x.values).filter((v) => v > 0);
  const yHi = Math.ceil(Math.log10(Math.max(...all)));
  const yLo = Math.max(yHi - 8, Math.floor(Math.log10(Math.min(...all))));
  const n = Math.max(...series.map((x) => x.values.length));
  const X = (i: number) => pad.l + (i / Math.max(1, n - 1)) * (o.width - pad.l - pad.r);
  const Y = (v: number) => {
    const t = (Math.log10(Math.max(v, 10 ** yLo)) - yLo) / (yHi - yLo || 1);
    return o.height - pad.b - t * (o.height - pad.t - pad.b);
  };
  const svg = s('svg', { viewBox: `0 0 ${o.width} ${o.height}`, width: o.width, role: 'img' });
  svg.setAttribute('aria-label', o.title);
  for (let d = yLo; d <= yHi; d++) {
    svg.append(
      s('line', { x1: pad.l, x2: o.width - pad.r, y1: Y(10 ** d), y2: Y(10 ** d), stroke: '#ddd' }),
    );
    const t = s('text', {
      x: pad.l - 10,
      y: Y(10 ** d) + 6,
      'text-anchor': 'end',
      'font-size': 18,
    });
    t.textContent = `1e${d}`;
    svg.append(t);
  }
  const xl = s('text', {
    x: (pad.l + o.width - pad.r) / 2,
    y: o.height - 15,
    'text-anchor': 'middle',
    'font-size': 20,
  });
  xl.textContent = 'singular value index (largest first)';
  const yl = s('text', {
    x: 22,
    y: (pad.t + o.height - pad.b) / 2,
    'text-anchor': 'middle',
    'font-size': 20,
    transform: `rotate(-90 22 ${(pad.t + o.height - pad.b) / 2})`,
  });
  yl.textContent = 'singular value (log scale)';
  svg.append(xl, yl);
  for (const ser of series) {
    const pts = ser.values.map((v, i) => `${X(i).toFixed(1)},${Y(v).toFixed(1)}`).join(' ');
    svg.append(s('polyline', { points: pts, fill: 'none', stroke: ser.colour, 'stroke-width': 4 }));
  }
  return svg;
}

/**
 * A listbox of gallery thumbnails: one tab stop, arrow keys (and Home/End) move
 * the selection, `onSelect` fires on every move. `columns` sets the grid width.
 */
export function imageGrid(
  bytes: Uint8Array,
  captions: string[],
  o: {
    columns: number;
    size: number;
    label: string;
    selected: number;
    onSelect: (i: number) => void;
  },
): { el: HTMLElement; select: (i: number) => void } {
  const el = h('div', {
    class: 'grid',
    role: 'listbox',
    'aria-label': o.label,
    style: `grid-template-columns: repeat(${o.columns}, ${o.size + 6}px)`,
  });
  const items = captions.map((c, i) => {
    const b = h('button', {
      role: 'option',
      'aria-selected': 'false',
      tabindex: -1,
      title: c,
      'data-index': i,
    });
    b.append(thumb(bytes, i, o.size, c));
    b.addEventListener('click', () => select(i, true));
    el.append(b);
    return b;
  });
  let current = -1;
  function select(i: number, focus = false) {
    const j = Math.max(0, Math.min(items.length - 1, i));
    if (current >= 0) {
      items[current].setAttribute('aria-selected', 'false');
      items[current].tabIndex = -1;
    }
    current = j;
    items[j].setAttribute('aria-selected', 'true');
    items[j].tabIndex = 0;
    if (focus) items[j].focus();
    items[j].scrollIntoView({ block: 'nearest' });
    o.onSelect(j);
  }
  el.addEventListener('keydown', (e) => {
    const step: Record<string, number> = {
      ArrowLeft: -1,
      ArrowRight: 1,
      ArrowUp: -o.columns,
      ArrowDown: o.columns,
      Home: -current,
      End: items.length,
    };
    if (!(e.key in step)) return;
    e.preventDefault();
    select(current + step[e.key], true);
  });
  items[Math.max(0, o.selected)].tabIndex = 0;
  current = Math.max(0, o.selected);
  items[current].setAttribute('aria-selected', 'true');
  return { el, select: (i) => select(i) };
}

/** A group of radio buttons; returns the fieldset. */
export function radios(
  name: string,
  legendText: string,
  options: { value: string; label: string }[],
  value: string,
  onChange: (v: string) => void,
): HTMLFieldSetElement {
  const fs = h('fieldset', {}, h('legend', {}, legendText));
  for (const o of options) {
    const input = h('input', { type: 'radio', name, value: o.value, checked: o.value === value });
    input.addEventListener('change', () => onChange(o.value));
    fs.append(h('label', {}, input, ` ${o.label}`));
  }
  return fs;
}

/** A labelled <select>. */
export function choice(
  label: string,
  options: { value: string; label: string }[],
  value: string,
  onChange: (v: string) => void,
): HTMLElement {
  const id = `sel-${Math.random().toString(36).slice(2, 8)}`;
  const sel = h('select', { id });
  for (const o of options)
    sel.append(h('option', { value: o.value, selected: o.value === value }, o.label));
  sel.addEventListener('change', () => onChange(sel.value));
  return h('span', {}, h('label', { for: id }, `${label} `), sel);
}

/** Debounce for typing. */
export function debounce<A extends unknown[]>(f: (...a: A) => void, ms: number) {
  let t: ReturnType<typeof setTimeout> | undefined;
  return (...a: A) => {
    clearTimeout(t);
    t = setTimeout(() => f(...a), ms);
  };
}
