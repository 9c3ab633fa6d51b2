/**
 * `npm run figures`: every figure of the lab and the reproduction report, in one command.
 *
 *   npm run figures                      # every notebook in full mode (tens of minutes), then collect + report
 *   npm run figures -- --quick           # LAB_QUICK=1: tiny runs (CI, tests), same outputs
 *   npm run figures -- 05-dynamics       # only these notebooks (figures of the others are kept)
 *   npm run figures -- --collect-only    # no execution: collect from out/notebooks/ as it is, write the report
 *   npm run figures -- --recompute       # first fill the grids the report reads (see below), then as above
 *   npm run figures -- --report-only     # only REPORT.md/.html from data/results/ (after a sweep lands)
 *
 * 1. [--recompute] For every grid the report reads whose table in data/results/ is
 *    missing or holds fewer runs than its definition in sweeps/, run
 *    `npm run sweep -- <grid>` (resumable; it skips runs already filed, so a filed
 *    run is never recomputed: to redo a grid from scratch, move its table out of
 *    data/results/ first). Hours on 2 cores. Without the flag, the tables are used
 *    as they are; the report's header lists each grid's commits and runs.
 * 2. Execute the notebooks (scripts/run-notebooks.ts → out/notebooks/*.ipynb).
 * 3. Collect every figure output of the executed notebooks: plotly figures are
 *    rendered again from their JSON as PNG (2× pixels) and SVG through the one
 *    exporter of lib/plot/plot.ts; raster outputs (image grids) are written as
 *    PNG and wrapped in an SVG. Names: the `png` name the notebook gave `show()`.
 * 4. One self-contained offline HTML page per notebook (scripts/figures-html.ts).
 * 5. REPORT.md and REPORT.html from data/results/ (lib/runs/report*.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/backend/index';
import { repoRoot, writeAtomic } from '../lib/paths';
import {
  closeExporter,
  FIGURE_NAME_KEY,
  type Figure,
  plotlyBundlePath,
  renderPng,
  renderSvg,
} from '../lib/plot/plot';
import { CLAIMS } from '../lib/runs/report-claims';
import { writeReport } from '../lib/runs/report-render';
import { loadResults } from '../lib/runs/results';
import { expandGrid, type Grid } from '../lib/runs/spec';
import { checkPng, checkSvg } from './figures-check';
import { type NotebookCell, notebookPage } from './figures-html';

const ROOT = repoRoot();
const t0 = Date.now();
const log = (msg: string) =>
  console.log(`[figures ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

function loadGrids(): Grid[] {
  const dir = path.join(ROOT, 'sweeps');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => {
      const mod = require(path.join(dir, f));
      return (mod.default ?? mod.grid) as Grid;
    })
    .filter((g) => g?.name);
}

/** Step 1: the grids the report reads that are missing or partial, swept in turn. */
function fillGrids(grids: Grid[]): boolean {
  let ok = true;
  for (const name of new Set(CLAIMS.map((c) => c.grid))) {
    const grid = grids.find((g) => g.name === name);
    if (!grid) continue;
    const have = new Set(loadResults(name)?.array('run') as string[] | undefined).size;
    const want = expandGrid(grid).length;
    if (have >= want) {
      log(`grid ${name}: ${have}/${want} runs filed, nothing to compute`);
      continue;
    }
    log(`grid ${name}: ${have}/${want} runs filed: npm run sweep -- ${name}`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/sweep.ts', name], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    ok &&= r.status === 0;
  }
  return ok;
}

/** Step 2: the notebook runner, its progress lines passed through. */
function runNotebooks(names: string[], quick: boolean): boolean {
  const env = { ...process.env, ...(quick ? { LAB_QUICK: '1' } : {}) };
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-notebooks.ts', ...names], {
    cwd: ROOT,
    stdio: 'inherit',
    env,
  });
  return r.status === 0;
}

type Found = { name: string; fig?: Figure; png?: Buffer };

/** The figure outputs of one executed notebook, in order, named. */
function figuresOf(nb: string, cells: NotebookCell[]): Found[] {
  const out: Found[] = [];
  for (const c of cells)
    for (const o of (c.outputs ?? []) as {
      data?: Record<string, unknown>;
      metadata?: Record<string, unknown>;
    }[]) {
      const d = o.data ?? {};
      const name = String(o.metadata?.[FIGURE_NAME_KEY] ?? `${nb}-${out.length + 1}`);
      const plotly = d['application/vnd.plotly.v1+json'] as Figure | undefined;
      const png = d['image/png'];
      if (plotly) out.push({ name, fig: { data: plotly.data, layout: plotly.layout } });
      else if (png) out.push({ name, png: Buffer.from([png].flat().join(''), 'base64') });
    }
  return out;
}

/** An SVG holding a raster image (image grids have no vector form). */
function rasterSvg(png: Buffer): string {
  const w = png.readUInt32BE(16);
  const h = png.readUInt32BE(20);
  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><image width="${w}" height="${h}" xlink:href="data:image/png;base64,${png.toString('base64')}"/></svg>\n`;
}

/**
 * Steps 3–4 for one executed notebook (`file`): PNG + SVG per figure, each checked
 * to be a real, non-blank image, and the notebook's HTML page. Returns the names.
 */
export async function collect(file: string, outDir: string, bundle: string): Promise<string[]> {
  const nb = path.basename(file).replace(/\.ipynb$/, '');
  const cells = (JSON.parse(fs.readFileSync(file, 'utf8')) as { cells: NotebookCell[] }).cells;
  const found = figuresOf(nb, cells);
  for (const f of found) {
    const png = f.fig ? await renderPng(f.fig, { scale: 2 }) : (f.png as Buffer);
    const svg = f.fig ? await renderSvg(f.fig) : rasterSvg(png);
    try {
      checkPng(png);
      checkSvg(svg);
    } catch (e) {
      throw new Error(`${nb}: figure ${f.name}: ${(e as Error).message}`);
    }
    writeAtomic(path.join(outDir, `${f.name}.png`), png);
    writeAtomic(path.join(outDir, `${f.name}.svg`), svg);
  }
  writeAtomic(path.join(outDir, `${nb}.html`), notebookPage(nb, cells, bundle));
  return found.map((f) => f.name);
}

/** One line: how many claims got which verdict. */
function reportLine(results: ReturnType<typeof writeReport>): void {
  const by = (v: string) => results.filter((r) => r.verdict === v).length;
  log(
    `REPORT.md, REPORT.html: ${results.length} claims, ${by('reproduced in direction')} reproduced in direction, ` +
      `${by('not reproduced')} not reproduced, ${by('inconclusive')} inconclusive, ${by('not measured')} not measured`,
  );
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      recompute: { type: 'boolean', default: false },
      'collect-only': { type: 'boolean', default: false },
      'report-only': { type: 'boolean', default: false },
      out: { type: 'string', default: 'figures' },
    },
  });
  const outDir = path.resolve(ROOT, values.out as string);
  const all = fs
    .readdirSync(path.join(ROOT, 'notebooks'))
    .filter((f) => f.endsWith('.ipynb'))
    .map((f) => f.replace(/\.ipynb$/, ''))
    .sort();
  const names = positionals.length
    ? positionals.map((n) => path.basename(n).replace(/\.ipynb$/, ''))
    : all;
  const grids = loadGrids();
  let ok = true;
  if (values.recompute) ok = fillGrids(grids) && ok;
  if (values['report-only']) {
    reportLine(writeReport({ grids, outDir: '.', backend: (await initBackend()).description }));
    return ok ? 0 : 1;
  }
  if (!values['collect-only']) {
    log(
      `executing ${names.length} notebook(s)${values.quick ? ' in quick mode (LAB_QUICK=1)' : ' in full mode'}`,
    );
    ok = runNotebooks(positionals, values.quick as boolean) && ok;
  }
  if (!positionals.length) fs.rmSync(outDir, { recursive: true, force: true }); // a full run starts clean
  const bundle = fs.readFileSync(plotlyBundlePath(), 'utf8');
  let count = 0;
  for (const nb of names) {
    const file = path.join(ROOT, 'out', 'notebooks', `${nb}.ipynb`);
    if (!fs.existsSync(file)) {
      log(`${nb}: no executed copy in out/notebooks/ (run it first)`);
      ok = false;
      continue;
    }
    const figs = await collect(file, outDir, bundle);
    log(`${nb}: ${figs.length} figures + ${nb}.html`);
    count += figs.length;
  }
  await closeExporter();
  const backend = (await initBackend()).description;
  const results = writeReport({ grids, outDir: '.', backend });
  log(
    `${count} figures (PNG + SVG) and ${names.length} HTML pages in ${path.relative(ROOT, outDir)}/`,
  );
  reportLine(results);
  if (!ok) log('some steps failed (see above); the figures and report hold what could be made');
  return ok ? 0 : 1;
}

if (require.main === module)
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(`figures: ${(e as Error).stack ?? e}`);
      process.exitCode = 1;
    },
  );
