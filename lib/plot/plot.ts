/**
 * The one plotting style of the lab: plotly figures as plain JSON, a fixed colour per
 * method so SigLIP is the same blue in every notebook, a static PNG export through
 * headless Chromium (offline), and `show()` that puts one rich output into a tslab
 * notebook (interactive plotly JSON for JupyterLab, an <img> fallback for nbconvert and
 * GitHub). Plain `node` scripts get the PNG on disk and a one-line log instead.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { repoRoot, writeAtomic } from '../paths';

/** One colour per method across all notebooks; keys are lower-case method names. */
export const METHOD_COLORS: Record<string, string> = {
  siglip: '#1f77b4',
  clip: '#ff7f0e',
  lixp: '#2ca02c',
  llip: '#d62728',
  registers: '#9467bd',
  average: '#8c564b',
  'learned-average': '#e377c2',
};

/** Colours for series that are not a method (seeds, ablations); none repeats a method's. */
export const FALLBACK_PALETTE = ['#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#843c39'];

/**
 * Colour of a method or series. Unknown names hash into the fallback palette, so the
 * same name gets the same colour in every figure without any shared state.
 */
export function colorFor(name: string): string {
  const key = name.toLowerCase();
  if (key in METHOD_COLORS) return METHOD_COLORS[key];
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) >>> 0;
  return FALLBACK_PALETTE[h % FALLBACK_PALETTE.length];
}

/** One line of a line figure; `method` picks the colour (defaults to `name`). */
export interface Series {
  name: string;
  x: number[];
  y: number[];
  method?: string;
  /** plotly dash style: 'dash', 'dot', ... (e.g. eval vs train curves). */
  dash?: string;
  /** explicit colour, for lines that are not a method (one run's scalars) */
  color?: string;
  /** symmetric error-bar half-widths, one per point (e.g. a 95% CI over seeds) */
  errors?: number[];
}

/** One group of bars; `errors` are symmetric error-bar half-widths. */
export type BarSeries = { name: string; values: number[]; method?: string; errors?: number[] };

/** A plotly figure as plain JSON: what plotly.js, JupyterLab and our exporter consume. */
export type Figure = { data: object[]; layout: object };

/** Every figure names its plot and both axes. */
export type Titles = { title: string; xTitle: string; yTitle: string };

const FONT = { family: 'Helvetica, Arial, sans-serif', size: 13, color: '#2a3f5f' };
const WIDTH = 720;
const HEIGHT = 420;

/** plotly.js has no built-in "plotly_white" template, so its look is spelled out here. */
export function axis(title: string): object {
  const grid = { gridcolor: '#e5ecf6', zerolinecolor: '#e5ecf6', linecolor: '#444' };
  // An explicit standoff makes plotly place the title below rotated category labels (without it they overlap).
  return { title: { text: title, standoff: 12 }, ...grid, ticks: 'outside', automargin: true };
}

export function baseLayout(t: Titles): Record<string, unknown> {
  const legend = { bgcolor: 'rgba(255,255,255,0.8)', bordercolor: '#ddd', borderwidth: 1 };
  const page = { width: WIDTH, height: HEIGHT, paper_bgcolor: 'white', plot_bgcolor: 'white' };
  const title = { text: t.title, x: 0.03, xanchor: 'left' };
  const margin = { l: 70, r: 20, t: 60, b: 60 };
  const axes = { xaxis: axis(t.xTitle), yaxis: axis(t.yTitle) };
  return { title, ...axes, font: FONT, ...page, margin, legend, showlegend: true };
}

/** About `n` evenly spaced round values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * p >= raw) ?? 10) * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * A log-scale axis over `values` whose ticks are labelled with their full values.
 * Over more than two decades: a tick every n decades (at most ~8 ticks); over
 * 0.3–2 decades: ×2 steps (plotly labels such a range with bare digits, "2 … 8",
 * which read as wrong values); narrower: round values in the data's range
 * (plotly would put no tick at all between 10.0 and 10.5).
 */
export function logAxis(title: string, values: number[]): Record<string, unknown> {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const [lo, hi] = pos.length ? [Math.min(...pos), Math.max(...pos)] : [1, 1];
  const decades = Math.log10(hi / lo);
  const base = { ...axis(title), type: 'log', exponentformat: 'power' };
  if (decades > 2) return { ...base, dtick: Math.ceil(decades / 8) }; // in decades
  if (decades > Math.log10(2)) return { ...base, dtick: Math.log10(2), tickformat: '~g' };
  const tickvals = niceTicks(lo, hi);
  return { ...base, tickvals, ticktext: tickvals.map((v) => String(v)) };
}

/** Line plot of training curves, sweeps, spectra. Short series get markers so points show. */
export function lineFigure(
  opts: Titles & { series: Series[]; logY?: boolean; logX?: boolean },
): Figure {
  for (const s of opts.series)
    if (s.errors && s.errors.length !== s.x.length)
      throw new Error(
        `lineFigure: series "${s.name}" has ${s.errors.length} errors for ${s.x.length} points`,
      );
  const data = opts.series.map((s) => ({
    type: 'scatter',
    mode: s.x.length <= 20 ? 'lines+markers' : 'lines',
    name: s.name,
    x: s.x,
    y: s.y,
    line: { color: s.color ?? colorFor(s.method ?? s.name), width: 2, dash: s.dash ?? 'solid' },
    ...(s.errors ? { error_y: { type: 'data', array: s.errors, visible: true } } : {}),
  }));
  const layout = baseLayout(opts);
  if (opts.logY)
    layout.yaxis = logAxis(
      opts.yTitle,
      opts.series.flatMap((s) => s.y),
    );
  if (opts.logX)
    layout.xaxis = logAxis(
      opts.xTitle,
      opts.series.flatMap((s) => s.x),
    );
  return { data, layout };
}

/** Grouped bar chart (one group per category, one bar per series), optional error bars. */
export function barFigure(opts: Titles & { categories: string[]; series: BarSeries[] }): Figure {
  const data = opts.series.map((s) => ({
    type: 'bar',
    name: s.name,
    x: opts.categories,
    y: s.values,
    marker: { color: colorFor(s.method ?? s.name) },
    ...(s.errors ? { error_y: { type: 'data', array: s.errors, visible: true } } : {}),
  }));
  return { data, layout: { ...baseLayout(opts), barmode: 'group' } };
}

// ---------------------------------------------------------------- PNG export

/** Image size in CSS pixels (default: the layout's); `scale: 2` doubles pixel density. */
export type PngOptions = { width?: number; height?: number; scale?: number };

type Exporter = { context: BrowserContext; page: Page; dir: string };

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = (
  '--headless --no-sandbox --disable-gpu --disable-quic --no-first-run ' +
  '--disable-background-networking --disable-component-update --disable-sync'
).split(' ');
/** Outside a kernel an open browser keeps node alive, so close it after this idle time. */
const IDLE_CLOSE_MS = 3000;

let exporter: Promise<Exporter> | null = null;
let idleTimer: NodeJS.Timeout | null = null;
let active = 0; // exports in flight; the idle timer only starts when none are

/**
 * Starts Chromium once per process with a fresh profile and loads plotly into a blank
 * page. Plotly's bundle is injected as script text, so nothing touches the network.
 * Loading the 10 MB bundle costs several seconds, hence the reuse.
 */
async function launch(): Promise<Exporter> {
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-plotly-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const options = { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS };
  const context = await chromium.launchPersistentContext(dir, options);
  const page = await context.newPage();
  await page.setContent('<!doctype html><html><head><meta charset="utf-8"></head><body></body>');
  const bundle = fs.readFileSync(plotlyBundlePath(), 'utf8');
  await page.addScriptTag({ content: bundle });
  return { context, page, dir };
}

/** Closes the shared browser (tests and long scripts call this; idle/exit also do). */
export async function closeExporter(): Promise<void> {
  if (idleTimer) clearTimeout(idleTimer);
  const current = exporter;
  [exporter, idleTimer] = [null, null];
  const ex = await current?.catch(() => null);
  if (!ex) return;
  await ex.context.close();
  fs.rmSync(ex.dir, { recursive: true, force: true });
}

/** Image formats the exporter writes: plotly's `toImage` does both. */
export type ImageFormat = 'png' | 'svg';

/** Renders a figure to PNG bytes with plotly's own `toImage`. */
export function renderPng(fig: Figure, opts: PngOptions = {}): Promise<Buffer> {
  return renderImage(fig, 'png', opts);
}

/** Renders a figure to SVG text (same exporter, same size as the PNG at scale 1). */
export async function renderSvg(fig: Figure, opts: PngOptions = {}): Promise<string> {
  return (await renderImage(fig, 'svg', opts)).toString('utf8');
}

/** The path of plotly's bundle, for pages that inline it (no CDN). */
export const plotlyBundlePath = () => require.resolve('plotly.js-dist/plotly.js');

/** Renders a figure to PNG or SVG bytes with plotly's own `toImage`. */
export async function renderImage(
  fig: Figure,
  format: ImageFormat,
  opts: PngOptions = {},
): Promise<Buffer> {
  if (idleTimer) clearTimeout(idleTimer);
  active++;
  try {
    if (!exporter) exporter = launch();
    const { page } = await exporter.catch((e) => {
      exporter = null;
      throw e;
    });
    const layout = fig.layout as { width?: number; height?: number };
    const width = opts.width ?? layout.width ?? WIDTH;
    const height = opts.height ?? layout.height ?? HEIGHT;
    const size = { format, width, height, scale: opts.scale ?? 1 };
    // An expression string, not a function: tsx/esbuild would inject helpers such as
    // __name into a serialized function, and those do not exist in the page.
    const expr = `window.Plotly.toImage(${JSON.stringify(fig)}, ${JSON.stringify(size)})`;
    const url: string = await page.evaluate(expr);
    const body = url.slice(url.indexOf(',') + 1);
    // png: a base64 data URL; svg: a percent-encoded one
    return format === 'png' ? Buffer.from(body, 'base64') : Buffer.from(decodeURIComponent(body));
  } finally {
    active--;
    if (active === 0 && !inTslab()) {
      idleTimer = setTimeout(() => void closeExporter(), IDLE_CLOSE_MS);
    }
  }
}

export { writeAtomic };

/** Renders `fig` and writes it to `file` atomically; returns the PNG bytes. */
export async function savePng(fig: Figure, file: string, opts: PngOptions = {}): Promise<Buffer> {
  const png = await renderPng(fig, opts);
  writeAtomic(file, png);
  return png;
}

// ---------------------------------------------------------------- notebook display

type DisplayMsg = { data: object; metadata: object; transient: object };
type DisplayWriter = (msg: DisplayMsg, update: boolean) => void;

/**
 * tslab's `display` emits one mimetype per output; a figure needs several in ONE output.
 * The kernel keeps the cell's writer in `lastWriteDisplayData` of its own loaded
 * `tslab/dist/jupyter` (tslab 1.0.22, pinned): find it in the require cache.
 */
function tslabWriter(): DisplayWriter | null {
  if (!('__tslab__' in globalThis)) return null;
  const main = require.main?.filename;
  const guess = main ? [path.resolve(path.dirname(main), '../dist/jupyter.js')] : [];
  for (const key of [...guess, ...Object.keys(require.cache)]) {
    if (!/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(key)) continue;
    const mod = require.cache[key]?.exports as { lastWriteDisplayData?: DisplayWriter } | undefined;
    if (typeof mod?.lastWriteDisplayData === 'function') return mod.lastWriteDisplayData;
  }
  return null;
}

/** True inside a running tslab kernel cell. */
export function inTslab(): boolean {
  return tslabWriter() !== null;
}

/**
 * Emits one display output with several mimetypes (key = mimetype; binary values must
 * already be base64). Returns false outside tslab so callers can fall back to stdout.
 */
export function displayBundle(data: Record<string, unknown>, metadata: object = {}): boolean {
  const write = tslabWriter();
  if (!write) return false;
  write({ data, metadata, transient: {} }, false);
  return true;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
/** Escapes text for HTML bodies and attribute values. */
export const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ESC[c]);

/** `png: 'loss'` → `<repo>/out/figures/loss.png`; absolute paths are kept. */
export function figurePath(png: string): string {
  const name = png.endsWith('.png') ? png : `${png}.png`;
  return path.isAbsolute(name) ? name : path.join(repoRoot(), 'out', 'figures', name);
}

function titleOf(fig: Figure): string {
  const t = (fig.layout as { title?: { text?: string } | string }).title;
  return (typeof t === 'string' ? t : t?.text) ?? 'figure';
}

function imgTag(b64: string, alt: string, width?: number): string {
  const w = width ? ` width="${width}"` : '';
  return `<img src="data:image/png;base64,${b64}" alt="${escapeHtml(alt)}"${w}/>`;
}

/**
 * Shows a figure. In tslab: one output with plotly JSON, an <img> fallback, PNG and text.
 * With `png` the image is also saved under out/figures/. Outside tslab: saves the PNG
 * (if named) and prints the title. Await it so the output lands in the right cell.
 */
export async function show(fig: Figure, opts: { png?: string } & PngOptions = {}): Promise<void> {
  const title = titleOf(fig);
  const file = opts.png ? figurePath(opts.png) : null;
  // Take the writer now: after the awaits below, tslab may already be on the next cell.
  const write = tslabWriter();
  if (!write) {
    if (file) await savePng(fig, file, opts);
    console.log(`[figure] ${title}${file ? ` -> ${file}` : ''}`);
    return;
  }
  const data: Record<string, unknown> = {
    'application/vnd.plotly.v1+json': { data: fig.data, layout: fig.layout },
    'text/plain': `<Figure: ${title}>`,
  };
  try {
    const png = file ? await savePng(fig, file, opts) : await renderPng(fig, opts);
    const b64 = png.toString('base64');
    const width = (fig.layout as { width?: number }).width ?? WIDTH;
    data['text/html'] = imgTag(b64, title, opts.width ?? width);
    data['image/png'] = b64;
  } catch (e) {
    // Without Chromium the interactive view still works in JupyterLab; say why no image.
    console.warn(`show(): no static image for "${title}": ${(e as Error).message}`);
  }
  write({ data, metadata: figureMetadata(opts.png), transient: {} }, false);
}

/**
 * The name a figure is saved under, in its output's metadata, so `npm run figures`
 * (scripts/figures.ts) can name the PNG/SVG it renders from an executed notebook.
 */
export const FIGURE_NAME_KEY = 'lab/figure';
const figureMetadata = (png?: string) =>
  png ? { [FIGURE_NAME_KEY]: path.basename(png).replace(/\.png$/, '') } : {};

/**
 * Shows raw PNG bytes (e.g. an image grid) as one output; prints the caption outside
 * tslab. With `png` the bytes are also saved under out/figures/.
 */
export function imageDisplay(
  pngBytes: Buffer,
  caption?: string,
  opts: { png?: string } = {},
): void {
  if (opts.png) writeAtomic(figurePath(opts.png), pngBytes);
  const b64 = pngBytes.toString('base64');
  const cap = caption ? `<figcaption>${escapeHtml(caption)}</figcaption>` : '';
  const shown = displayBundle(
    {
      'image/png': b64,
      'text/html': `<figure>${imgTag(b64, caption ?? 'image')}${cap}</figure>`,
      'text/plain': caption ?? `<image: ${pngBytes.length} bytes>`,
    },
    figureMetadata(opts.png),
  );
  if (!shown) console.log(`[image] ${caption ?? ''} (${pngBytes.length} bytes)`);
}
