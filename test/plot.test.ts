import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { from } from 'arquero';
import {
  barFigure,
  closeExporter,
  colorFor,
  lineFigure,
  logAxis,
  METHOD_COLORS,
  niceTicks,
  type Series,
  savePng,
} from '../lib/plot/plot';
import { formatNumber, showTable, toMarkdown, toText } from '../lib/plot/table';

const NO_CHROMIUM = fs.existsSync('/usr/bin/chromium')
  ? false
  : '/usr/bin/chromium is not installed (apt-get install chromium)';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** IHDR is the first chunk: width and height are big-endian at bytes 16 and 20. */
function pngSize(png: Buffer): { width: number; height: number } {
  assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

function curve(name: string, method?: string): Series {
  const x = [0, 1, 2, 3];
  return { name, method, x, y: x.map((v) => 1 / (v + 1)) };
}

function colorsOf(fig: { data: object[] }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of fig.data as { name: string; line: { color: string } }[]) {
    out[t.name] = t.line.color;
  }
  return out;
}

describe('figures', () => {
  const titles = { title: 'Loss', xTitle: 'step', yTitle: 'loss' };

  test('lineFigure sets the title and both axis titles', () => {
    const fig = lineFigure({ ...titles, series: [curve('SigLIP', 'siglip')], logY: true });
    const layout = fig.layout as Record<string, { text?: string; title?: { text: string } }>;
    assert.equal(layout.title.text, 'Loss');
    assert.equal(layout.xaxis.title?.text, 'step');
    assert.equal(layout.yaxis.title?.text, 'loss');
    assert.equal((layout.yaxis as { type?: string }).type, 'log');
  });

  test('a method keeps its colour across figures, whatever the series is called', () => {
    const a = lineFigure({ ...titles, series: [curve('SigLIP', 'siglip'), curve('CLIP', 'clip')] });
    const b = lineFigure({ ...titles, series: [curve('clip (eval)', 'clip'), curve('siglip')] });
    assert.equal(colorsOf(a).SigLIP, METHOD_COLORS.siglip);
    assert.equal(colorsOf(b).siglip, METHOD_COLORS.siglip);
    assert.equal(colorsOf(a).CLIP, colorsOf(b)['clip (eval)']);
    assert.notEqual(colorsOf(a).SigLIP, colorsOf(a).CLIP);
  });

  test('methods have distinct colours; other names get a stable fallback', () => {
    const methods = Object.values(METHOD_COLORS);
    assert.equal(new Set(methods).size, methods.length);
    assert.equal(colorFor('seed 7'), colorFor('seed 7'));
    assert.ok(!methods.includes(colorFor('seed 7')));
    assert.equal(colorFor('LIxP'), METHOD_COLORS.lixp);
  });

  test('lineFigure carries error bars and refuses a wrong count', () => {
    const s = { name: 'Llip', method: 'llip', x: [1, 8], y: [0.5, 0.6], errors: [0.1, 0.2] };
    const [trace] = lineFigure({ ...titles, series: [s] }).data as { error_y: object }[];
    assert.deepEqual(trace.error_y, { type: 'data', array: [0.1, 0.2], visible: true });
    const [plainTrace] = lineFigure({ ...titles, series: [curve('SigLIP', 'siglip')] })
      .data as object[];
    assert.ok(!('error_y' in plainTrace));
    assert.throws(
      () => lineFigure({ ...titles, series: [{ ...s, errors: [0.1] }] }),
      /"Llip" has 1 errors for 2 points/,
    );
  });

  test('barFigure groups series and carries error bars', () => {
    const fig = barFigure({
      ...titles,
      categories: ['a', 'b'],
      series: [{ name: 'Llip', method: 'llip', values: [1, 2], errors: [0.1, 0.2] }],
    });
    const [trace] = fig.data as { x: string[]; marker: { color: string }; error_y: object }[];
    assert.deepEqual(trace.x, ['a', 'b']);
    assert.equal(trace.marker.color, METHOD_COLORS.llip);
    assert.deepEqual(trace.error_y, { type: 'data', array: [0.1, 0.2], visible: true });
    assert.equal((fig.layout as { barmode: string }).barmode, 'group');
  });
});

describe('savePng (headless Chromium)', { skip: NO_CHROMIUM }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-test-'));
  after(async () => {
    await closeExporter();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('writes a PNG of the requested size, atomically', { timeout: 120_000 }, async () => {
    const fig = lineFigure({
      title: 'Test',
      xTitle: 'x',
      yTitle: 'y',
      series: [curve('SigLIP', 'siglip')],
    });
    const file = path.join(dir, 'nested', 'fig.png');
    const bytes = await savePng(fig, file, { width: 400, height: 300 });
    const png = fs.readFileSync(file);
    assert.deepEqual(png, bytes);
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
    assert.deepEqual(pngSize(png), { width: 400, height: 300 });
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['fig.png']);
  });

  test('defaults to the layout size and reuses the browser', { timeout: 120_000 }, async () => {
    const fig = barFigure({
      title: 'Bars',
      xTitle: 'x',
      yTitle: 'y',
      categories: ['a'],
      series: [{ name: 'CLIP', values: [1] }],
    });
    const start = Date.now();
    const png = await savePng(fig, path.join(dir, 'bars.png'));
    assert.deepEqual(pngSize(png), { width: 720, height: 420 });
    assert.ok(Date.now() - start < 20_000, 'second export should not reload plotly');
  });
});

describe('tables', () => {
  const rows = [
    { method: 'siglip', acc: 0.71234, steps: 1000, loss: 0.00001 },
    { method: 'clip', acc: 1, steps: 200, loss: 2.5 },
  ];

  test('numbers use `digits` decimals; whole-number columns stay integers', () => {
    assert.equal(
      toText(rows, 3),
      [
        'method    acc  steps      loss',
        '------  -----  -----  --------',
        'siglip  0.712   1000  1.000e-5',
        'clip    1.000    200     2.500',
      ].join('\n'),
    );
    assert.equal(formatNumber(0.5, 2), '0.50');
    assert.equal(formatNumber(Number.NaN), 'NaN');
  });

  test('toMarkdown right-aligns numbers, escapes pipes, accepts arquero tables', () => {
    const md = toMarkdown(from([{ name: 'a|b', acc: 0.5 }]), 2);
    assert.equal(md, '|name|acc|\n|:-|-:|\n|a\\|b|0.50|\n');
  });

  test('showTable prints an aligned table with its title outside a notebook', (t) => {
    const logged: string[] = [];
    t.mock.method(console, 'log', (s: string) => logged.push(s));
    showTable(rows, { title: 'Results', digits: 2 });
    assert.equal(logged.length, 1);
    assert.match(logged[0], /^Results\nmethod {3}acc {2}steps/);
    assert.match(logged[0], /siglip {2}0\.71 {3}1000/);
  });
});

test('log axes: every tick labelled with its value, at most ~8 of them, never none', () => {
  // narrow ranges get round values inside the data's range
  const ticks = niceTicks(10.0002, 10.0093);
  assert.deepEqual(ticks, [10.002, 10.004, 10.006, 10.008]);
  const narrow = logAxis('t', [10.0002, 10.0093]) as { tickvals: number[]; ticktext: string[] };
  assert.deepEqual(narrow.ticktext, ['10.002', '10.004', '10.006', '10.008']);
  // 0.3–2 decades: ×2 steps with full labels; wide ranges: whole decades, ≤ 8 ticks
  assert.equal((logAxis('loss', [4, 70]) as { dtick: number }).dtick, Math.log10(2));
  const wide = logAxis('t', [1e-47, 1e17]) as { dtick: number };
  assert.ok(Number.isInteger(wide.dtick) && 64 / wide.dtick <= 8, `dtick ${wide.dtick}`);
  assert.deepEqual(niceTicks(3, 3), [3]);
});
