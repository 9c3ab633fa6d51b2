/**
 * One self-contained, offline HTML page per executed notebook (`npm run figures`):
 * its prose (a small Markdown subset), its text and table outputs, and every
 * figure as an interactive plotly chart, with plotly's bundle inlined once (no
 * CDN, nothing fetched). Raster outputs (image grids) stay <img> with data URLs.
 */
import { escapeHtml } from '../lib/plot/plot';

type Output = {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
};
export type NotebookCell = { cell_type: string; source: string | string[]; outputs?: Output[] };

const joined = (x: string | string[] | undefined) => (Array.isArray(x) ? x.join('') : (x ?? ''));

/** **bold**, *italic*, `code`; text is escaped first. Math stays as TeX source. */
function inline(s: string): string {
  return escapeHtml(s)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
    .replace(/(^|[\s(])\*([^*\s][^*]*)\*/g, '$1<i>$2</i>');
}

/** The Markdown the notebooks use: headings, paragraphs, bullet and numbered lists, $$ blocks. */
export function markdownHtml(md: string): string {
  const out: string[] = [];
  for (const block of md.split(/\n\s*\n/)) {
    const lines = block.split('\n');
    const h = /^(#{1,4})\s+(.*)$/.exec(lines[0]);
    if (h && lines.length === 1) out.push(`<h${h[1].length}>${inline(h[2])}</h${h[1].length}>`);
    else if (lines.every((l) => /^\s*([-*]|\d+\.)\s|^\s{2,}\S/.test(l))) {
      const tag = /^\s*\d+\./.test(lines[0]) ? 'ol' : 'ul';
      const items = block
        .split(/\n(?=\s*(?:[-*]|\d+\.)\s)/)
        .map((i) => i.replace(/^\s*([-*]|\d+\.)\s/, ''));
      out.push(`<${tag}>${items.map((i) => `<li>${inline(i)}</li>`).join('')}</${tag}>`);
    } else if (block.trim().startsWith('$$'))
      out.push(`<pre class="math">${escapeHtml(block.trim())}</pre>`);
    else if (h)
      out.push(
        `<h${h[1].length}>${inline(h[2])}</h${h[1].length}>`,
        `<p>${inline(lines.slice(1).join('\n'))}</p>`,
      );
    else out.push(`<p>${inline(block)}</p>`);
  }
  return out.join('\n');
}

/** One output as HTML: plotly JSON → a chart div; else html, png or text, in that order. */
function outputHtml(o: Output, id: () => string, charts: string[]): string {
  if (o.output_type === 'stream')
    return o.name === 'stderr' ? '' : `<pre class="out">${escapeHtml(joined(o.text))}</pre>`;
  const d = o.data ?? {};
  const plotly = d['application/vnd.plotly.v1+json'] as
    | { data: object[]; layout: object }
    | undefined;
  if (plotly) {
    const div = id();
    charts.push(
      `Plotly.newPlot(${JSON.stringify(div)}, ${JSON.stringify(plotly.data)}, ${JSON.stringify(plotly.layout)}, {responsive: true, displaylogo: false});`,
    );
    return `<div class="fig" id="${div}"></div>`;
  }
  if (typeof d['text/html'] === 'string' || Array.isArray(d['text/html']))
    return `<div class="out">${joined(d['text/html'] as string)}</div>`;
  if (d['image/png'])
    return `<img src="data:image/png;base64,${joined(d['image/png'] as string)}">`;
  if (d['text/plain'])
    return `<pre class="out">${escapeHtml(joined(d['text/plain'] as string))}</pre>`;
  return '';
}

const STYLE = `body{font:17px/1.5 Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:14px}pre.math{background:none;color:#444}
details{margin:.4em 0;color:#555}summary{cursor:pointer;font-size:14px}.fig{width:100%;max-width:900px;margin:1em 0}
img{max-width:100%}table{border-collapse:collapse;font-size:14px;margin:.5em 0}td,th{border-bottom:1px solid #e5e5e5}
code{background:#f3f3f3;padding:0 .2em}`;

/**
 * The page of one executed notebook: prose, code folded, outputs, charts drawn by
 * the inlined plotly bundle. The caller reads the bundle once (10 MB) and passes it.
 */
export function notebookPage(title: string, cells: NotebookCell[], plotlyJs: string): string {
  let n = 0;
  const id = () => `fig-${++n}`;
  const charts: string[] = [];
  const body = cells.map((c) => {
    if (c.cell_type === 'markdown') return markdownHtml(joined(c.source));
    if (c.cell_type !== 'code') return '';
    const src = `<details><summary>code</summary><pre>${escapeHtml(joined(c.source))}</pre></details>`;
    return src + (c.outputs ?? []).map((o) => outputHtml(o, id, charts)).join('\n');
  });
  // `</script>` inside the bundle or the JSON would end the tag early
  const safe = (s: string) => s.replace(/<\/script/gi, '<\\/script');
  return [
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style><script>${safe(plotlyJs)}</script></head><body>`,
    ...body,
    `<script>${safe(charts.join('\n'))}</script></body></html>`,
  ].join('\n');
}
