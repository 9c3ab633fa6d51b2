/**
 * REPORT.md and REPORT.html from the claims' results (report.ts): a header with
 * the scale and provenance of every grid (from its definition and its table),
 * the verdict rule, the verdict table, the orders, and what is not measured yet.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { FewShotMethod, FewShotRow } from '../eval/fewshot-suite';
import { gitCommit, labPath, writeAtomic } from '../paths';
import { escapeHtml } from '../plot/plot';
import { toHtml, toMarkdown } from '../plot/table';
import { meanCI } from '../stats';
import { shotsToMatch } from './lixp-report';
import {
  type ClaimResult,
  EQUAL_MARGIN,
  evaluateClaims,
  groupVerdicts,
  runValues,
  type Side,
  type Verdict,
} from './report';
import { CLAIMS, type Claim, metricName } from './report-claims';
import { loadResults, RESULTS_DIR, type Row } from './results';
import { expandGrid, type Grid, specConfig } from './spec';

/** Accuracies are fractions in the tables; the report shows them in points (× 100). */
const isAccuracy = (m: ClaimResult['claim']['metric']) =>
  typeof m !== 'string' || m === 'zeroShot' || /^(fs\.|fewShot)/.test(m);

function fmt(x: number, acc: boolean): string {
  if (!Number.isFinite(x)) return 'n/a';
  return acc ? (100 * x).toFixed(1) : x.toPrecision(3);
}

function sideText(s: Side | null, acc: boolean): string {
  if (!s) return '—';
  const ci = Number.isFinite(s.ci95) ? ` ± ${fmt(s.ci95, acc)}` : '';
  return `${s.label}: ${fmt(s.mean, acc)}${ci} (n = ${s.n})`;
}

const MARK: Record<Verdict, string> = {
  'reproduced in direction': '✅ reproduced in direction',
  'not reproduced': '❌ not reproduced',
  inconclusive: '➖ inconclusive',
  'not measured': '⏳ not measured',
};

/** The verdict table's rows, in points for accuracies. */
export function verdictRows(results: ClaimResult[]): Record<string, string>[] {
  return results.map((r) => {
    const acc = isAccuracy(r.claim.metric);
    const d = Number.isFinite(r.diff)
      ? `${r.diff >= 0 ? '+' : ''}${fmt(r.diff, acc)}${Number.isFinite(r.ci95) ? ` ± ${fmt(r.ci95, acc)}` : ''}`
      : '—';
    return {
      claim: `${r.claim.paper}: ${r.claim.claim}`,
      paper: r.claim.paperSays,
      'grid · metric': `${r.claim.grid} · ${metricName(r.claim.metric)}`,
      'ours: A': sideText(r.a, acc),
      'ours: B': r.claim.b === null ? '(0)' : sideText(r.b, acc),
      'A − B (95% CI)': d,
      verdict: MARK[r.verdict],
    };
  });
}

export interface GridScale {
  grid: string;
  runs: string;
  seeds: string;
  training: string;
  model: string;
  data: string;
  backend: string;
  commit: string;
  'wall time per run (s)': string;
}

const uniq = (xs: unknown[]) => [...new Set(xs.map(String))];

/** Scale and provenance of one grid: its definition (when given) and its table. */
export function gridScale(name: string, def: Grid | undefined, dir = RESULTS_DIR): GridScale {
  const table = loadResults(name, dir);
  const rows = (table?.objects() as Row[]) ?? [];
  const perRun = new Map<string, Row>();
  for (const r of rows) perRun.set(r.run as string, r);
  const runs = [...perRun.values()];
  const specs = def ? expandGrid(def) : [];
  const cfg = specs.length ? specConfig(specs[0]) : null;
  const steps = uniq(specs.map((s) => specConfig(s).steps));
  const dur = meanCI(runs.map((r) => r.duration as number));
  const m = cfg?.model;
  return {
    grid: name,
    runs: `${runs.length} / ${specs.length || '?'}`,
    seeds: uniq(runs.map((r) => r.seed as number).sort((x, y) => x - y)).join(', ') || '—',
    training: cfg ? `${cfg.name} preset, ${steps.join(' / ')} steps, batch ${cfg.batchSize}` : '?',
    model: m
      ? `ViT ${m.image.imageSize}px/${m.image.patch}, width ${m.image.width}, depth ${m.image.depth}; text width ${m.text.width}, depth ${m.text.depth}; embed ${m.embedDim}`
      : '?',
    data: cfg ? `procedural world, ${cfg.world.trainScenes ?? 50000} training scenes` : '?',
    backend: uniq(runs.map((r) => r.backend)).join('; ') || '—',
    commit: uniq(runs.map((r) => r.commit)).join(', ') || '—',
    'wall time per run (s)': runs.length
      ? `${dur.mean.toFixed(0)} mean (${Math.min(...runs.map((r) => r.duration as number)).toFixed(0)}–${Math.max(...runs.map((r) => r.duration as number)).toFixed(0)}), ${(runs.reduce((s, r) => s + (r.duration as number), 0) / 3600).toFixed(2)} h in all`
      : '—',
  };
}

export interface ReportInput {
  results: ClaimResult[];
  scales: GridScale[];
  /** this machine's backend line (initBackend's description), when known */
  backend?: string;
  /** extra lines under the verdicts (e.g. shots-to-match) */
  notes?: string[];
}

export const RULE = [
  'For a claim about A − B, each run contributes its metric at its last step; per group the mean ± 95% CI over seeds (Student t); the difference of the two means gets a Welch 95% CI (t at the Welch–Satterthwaite degrees of freedom, rounded down).',
  'If the paper says A > B (or A < B): the CI excludes 0 on the paper’s side → **reproduced in direction**; it excludes 0 on the other side → **not reproduced**; it contains 0 → **inconclusive**.',
  `If the paper says A ≈ B: the CI lies inside ±${100 * EQUAL_MARGIN} accuracy point → **reproduced in direction**; wholly outside → **not reproduced**; else **inconclusive**.`,
  'A group with no runs in data/results (grid or metric absent) → **not measured**, with what fills it; fewer than 2 seeds on a side → **inconclusive**.',
  'An order (a ladder, a curve) applies the rule to each adjacent pair: any pair not reproduced → not reproduced; else any not measured → not measured; else all reproduced → reproduced; else inconclusive.',
];

function machine(backend?: string): string {
  const cpu = os.cpus();
  const mem = (os.totalmem() / 2 ** 30).toFixed(0);
  return `${cpu[0]?.model ?? 'unknown CPU'} × ${cpu.length} cores, ${mem} GiB RAM, Node ${process.version}${backend ? `, backend: ${backend}` : ''}`;
}

function counts(results: ClaimResult[]): string {
  const by = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  return (Object.keys(MARK) as Verdict[]).map((v) => `${by(v)} ${v}`).join(', ');
}

/** One line per reason: the claims it holds back, then why and what fills it. */
function missingLines(missing: ClaimResult[]): string[] {
  const by = new Map<string, string[]>();
  for (const r of missing) by.set(r.note, [...(by.get(r.note) ?? []), r.claim.id]);
  return [...by].map(([note, ids]) => `${ids.join(', ')}: ${note}`);
}

/** REPORT.md's text. */
export function reportMarkdown(o: ReportInput): string {
  const orders = groupVerdicts(o.results).map((g) => ({
    order: g.group,
    pairs: String(g.pairs),
    verdict: MARK[g.verdict],
  }));
  const missing = o.results.filter((r) => r.verdict === 'not measured');
  return [
    '# Reproduction report',
    '',
    `Written by \`npm run figures\` (lib/runs/report*.ts) from the tables in \`data/results/\`; never edited by hand. ${new Date().toISOString().slice(0, 10)}, tree at commit ${gitCommit()}.`,
    '',
    '## Scale and provenance',
    '',
    `Report written on: ${machine(o.backend)}. The tables record each run's commit, backend and wall time (\`duration\`), not its machine; the grids ran on the lab's 2-core machine.`,
    '',
    toMarkdown(o.scales as unknown as Record<string, unknown>[]),
    '',
    '## The verdict rule',
    '',
    ...RULE.map((l) => `- ${l}`),
    '',
    '## Verdicts',
    '',
    `${o.results.length} claims: ${counts(o.results)}. Accuracies in points (mean ± 95% CI over seeds).`,
    '',
    toMarkdown(verdictRows(o.results)),
    '',
    ...(orders.length ? ['### Orders', '', toMarkdown(orders), ''] : []),
    ...(o.notes?.length ? ['### Notes', '', ...o.notes.map((n) => `- ${n}`), ''] : []),
    ...(missing.length
      ? ['## Not measured yet', '', ...missingLines(missing).map((l) => `- ${l}`), '']
      : []),
  ].join('\n');
}

const mdInline = (s: string) =>
  escapeHtml(s)
    .replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');

/** REPORT.html: the same content, one self-contained page. */
export function reportHtml(o: ReportInput): string {
  const orders = groupVerdicts(o.results).map((g) => ({
    order: g.group,
    pairs: g.pairs,
    verdict: MARK[g.verdict],
  }));
  const missing = o.results.filter((r) => r.verdict === 'not measured');
  const li = (xs: string[]) => `<ul>${xs.map((x) => `<li>${mdInline(x)}</li>`).join('')}</ul>`;
  const style =
    'body{font:16px/1.45 Helvetica,Arial,sans-serif;margin:2em auto;max-width:1300px;color:#222}' +
    'table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border-bottom:1px solid #ddd;vertical-align:top}';
  return [
    `<!doctype html><html><head><meta charset="utf-8"><title>Reproduction report</title><style>${style}</style></head><body>`,
    '<h1>Reproduction report</h1>',
    `<p>Written by <code>npm run figures</code> from <code>data/results/</code>; ${new Date().toISOString().slice(0, 10)}, commit ${gitCommit()}. Report written on: ${escapeHtml(machine(o.backend))}.</p>`,
    '<h2>Scale and provenance</h2>',
    toHtml(o.scales as unknown as Record<string, unknown>[]),
    '<h2>The verdict rule</h2>',
    li(RULE),
    `<h2>Verdicts</h2><p>${o.results.length} claims: ${escapeHtml(counts(o.results))}. Accuracies in points.</p>`,
    toHtml(verdictRows(o.results)),
    orders.length ? `<h3>Orders</h3>${toHtml(orders)}` : '',
    o.notes?.length ? `<h3>Notes</h3>${li(o.notes)}` : '',
    missing.length ? `<h2>Not measured yet</h2>${li(missingLines(missing))}` : '',
    '</body></html>',
  ].join('\n');
}

/**
 * The blog's headline beside the sample-efficiency claim: how many shots SigLIP
 * needs to match LIxP at 8 (prototypes, scale study's longest budget), from the
 * seed-mean curves; null when the grid is missing.
 */
export function shotsNote(
  dir = RESULTS_DIR,
  steps = 3000,
  method: FewShotMethod = 'prototype',
): string | null {
  const rows = loadResults('lixp-scale', dir)?.objects() as Row[] | undefined;
  if (!rows) return null;
  const curve = (label: string): FewShotRow[] =>
    [1, 2, 4, 8, 16, 32, 64].flatMap((k) => {
      const xs = runValues(rows, 'lixp-scale', `fs.${method}.${k}`).get(label);
      return xs?.length ? [{ task: label, method, k, ...meanCI(xs) }] : [];
    });
  const [sig, lx] = [curve(`siglip@${steps}`), curve(`lixp@${steps}`)];
  if (!sig.length || !lx.length) return null;
  const need = shotsToMatch(sig, lx, method, 8);
  const at8 = (c: FewShotRow[]) =>
    (100 * (c.find((r) => r.k === 8)?.mean ?? Number.NaN)).toFixed(1);
  return `Sample efficiency (${method}, ${steps} steps, seed means): LIxP at 8 shots ${at8(lx)}, SigLIP at 8 shots ${at8(sig)}; SigLIP ${need === null ? 'never reaches it within 64 shots' : `reaches it at ${need.toFixed(1)} shots`} (the blog: 32, i.e. 4×; fewer than 8 means LIxP is behind).`;
}

/** Evaluates every claim and writes REPORT.md and REPORT.html; returns the results. */
export function writeReport(o: {
  grids: Grid[];
  dir?: string;
  outDir?: string;
  backend?: string;
  claims?: Claim[];
}): ClaimResult[] {
  const dir = o.dir ?? RESULTS_DIR;
  const results = evaluateClaims(o.claims ?? CLAIMS, dir);
  const names = [...new Set([...o.grids.map((g) => g.name), ...results.map((r) => r.claim.grid)])];
  const scales = names
    .filter((n) => results.some((r) => r.claim.grid === n))
    .map((n) =>
      gridScale(
        n,
        o.grids.find((g) => g.name === n),
        dir,
      ),
    );
  const note = shotsNote(dir);
  const input: ReportInput = { results, scales, backend: o.backend, notes: note ? [note] : [] };
  const out = labPath(o.outDir ?? '.');
  writeAtomic(path.join(out, 'REPORT.md'), reportMarkdown(input));
  writeAtomic(path.join(out, 'REPORT.html'), reportHtml(input));
  return results;
}
