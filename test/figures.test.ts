/**
 * `npm run figures`' collector (scripts/figures.ts) on a fixture notebook: every
 * figure output becomes a PNG and an SVG that are real, non-blank images, named as
 * the notebook named them, plus one offline HTML page; the image checks themselves
 * fail on blank and broken files; and the files of the last `npm run figures` in
 * figures/, when there are any, pass the same checks.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { encodePng } from '../lib/data/index';
import { repoRoot } from '../lib/paths';
import { closeExporter, FIGURE_NAME_KEY, lineFigure, plotlyBundlePath } from '../lib/plot/plot';
import { collect } from '../scripts/figures';
import { checkPng, checkSvg } from '../scripts/figures-check';

after(() => closeExporter());

/** A w×h RGB image: a gradient, or one flat colour. */
function rgb(w: number, h: number, flat = false): Buffer {
  const px = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++)
    px.set(flat ? [200, 200, 200] : [i % 256, (i * 7) % 256, 128], i * 3);
  return encodePng(px, w, h);
}

test('the checks catch blank and broken images', () => {
  assert.equal(checkPng(rgb(16, 8)).width, 16);
  assert.throws(() => checkPng(rgb(16, 8, true)), /blank/);
  assert.throws(() => checkPng(Buffer.from('not a png at all, not even close')), /signature/);
  assert.throws(() => checkPng(rgb(16, 8).subarray(0, 40)), /IDAT|truncated|unexpected end/i);
  assert.ok(
    checkSvg('<svg xmlns="http://www.w3.org/2000/svg"><g><path d="M0 0L1 1"/></g></svg>')
      .elements >= 1,
  );
  assert.throws(() => checkSvg('<svg><g><path d="M0 0"/></svg>'), /closes/);
  assert.throws(() => checkSvg('<svg><g></g></svg>'), /draws nothing/);
  assert.throws(() => checkSvg('<html><path/></html>'), /root/);
});

test('collect: a notebook’s figures become checked PNG + SVG files and one offline page', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-figures-'));
  try {
    const fig = lineFigure({
      title: 'Training loss',
      xTitle: 'training step',
      yTitle: 'loss',
      series: [{ name: 'SigLIP', method: 'siglip', x: [1, 2, 3], y: [3, 2, 1.5] }],
    });
    const png = rgb(24, 12).toString('base64');
    const nb = {
      cells: [
        { cell_type: 'markdown', source: '# Title\n\nSome **prose**.' },
        {
          cell_type: 'code',
          source: 'await show(fig)',
          outputs: [
            {
              output_type: 'display_data',
              data: { 'application/vnd.plotly.v1+json': fig, 'text/plain': 'x' },
              metadata: { [FIGURE_NAME_KEY]: 'nb-loss' },
            },
            { output_type: 'display_data', data: { 'image/png': png }, metadata: {} },
            { output_type: 'stream', name: 'stdout', text: 'hello\n' },
          ],
        },
      ],
    };
    const file = path.join(dir, 'nb.ipynb');
    fs.writeFileSync(file, JSON.stringify(nb));
    const out = path.join(dir, 'figures');
    const names = await collect(file, out, fs.readFileSync(plotlyBundlePath(), 'utf8'));
    assert.deepEqual(names, ['nb-loss', 'nb-2']);
    for (const n of names) {
      const p = checkPng(fs.readFileSync(path.join(out, `${n}.png`)));
      assert.ok(p.colours >= 2);
      checkSvg(fs.readFileSync(path.join(out, `${n}.svg`), 'utf8'));
    }
    assert.equal(
      checkPng(fs.readFileSync(path.join(out, 'nb-loss.png'))).width,
      1440,
      'plotly PNGs at 2× pixels',
    );
    assert.match(fs.readFileSync(path.join(out, 'nb-loss.svg'), 'utf8'), /Training loss/);
    const html = fs.readFileSync(path.join(out, 'nb.html'), 'utf8');
    assert.match(html, /Plotly\.newPlot\("fig-1"/);
    assert.match(html, /<b>prose<\/b>/);
    assert.doesNotMatch(html, /<script[^>]+src=/, 'no external script: plotly is inlined');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the files of the last `npm run figures` (figures/) are real, non-blank images', () => {
  const dir = path.join(repoRoot(), 'figures');
  if (!fs.existsSync(dir)) return; // not generated in this checkout
  const files = fs.readdirSync(dir);
  for (const f of files.filter((x) => x.endsWith('.png'))) {
    assert.doesNotThrow(() => checkPng(fs.readFileSync(path.join(dir, f))), f);
    assert.ok(files.includes(f.replace(/\.png$/, '.svg')), `${f} has its SVG`);
  }
  for (const f of files.filter((x) => x.endsWith('.svg')))
    assert.doesNotThrow(() => checkSvg(fs.readFileSync(path.join(dir, f), 'utf8')), f);
});
