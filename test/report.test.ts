/**
 * The reproduction report's verdicts follow from their numbers by the one rule
 * (lib/runs/report.ts): a synthetic result set with known means and spreads,
 * written as real data/results-style tables in a temp folder, gives known
 * verdicts; flipping the sign of a difference flips its verdict; missing grids
 * and metrics are "not measured" with the command that fills them.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  differenceCI,
  evaluateClaims,
  groupVerdict,
  runValues,
  verdictOf,
} from '../lib/runs/report';
import { CLAIMS, type Claim, GRID_GROUPS } from '../lib/runs/report-claims';
import { reportMarkdown, verdictRows, writeReport } from '../lib/runs/report-render';
import { type Row, saveResults, toTable } from '../lib/runs/results';
import { expandGrid, type Grid } from '../lib/runs/spec';
import { tCritical } from '../lib/stats';

/** Three seeds per group with values mean + {−s, 0, +s}: mean and std (= s) known exactly. */
function runs(
  grid: string,
  group: Record<string, unknown>,
  metric: string,
  mean: number,
  s: number,
) {
  return [-s, 0, s].map(
    (dv, seed): Row => ({
      run: `${JSON.stringify(group)}-${seed}`, // one run per group and seed, all metrics
      grid,
      ...(group as Row),
      seed,
      step: 100,
      metric,
      value: mean + dv,
      commit: 'abc',
      backend: 'test',
      duration: 10 + seed,
    }),
  );
}

const claim = (over: Partial<Claim>): Claim => ({
  id: 'c',
  paper: 'LIxP',
  claim: 'A beats B',
  paperSays: '+1',
  grid: 'lixp-scale',
  metric: 'zeroShot',
  a: 'lixp@3000',
  b: 'siglip@3000',
  expect: 'greater',
  ...over,
});

const scale = (name: string, steps: number) => ({ 'objective.name': name, steps });

function fixture(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-report-'));
  // lixp@3000 − siglip@3000: zeroShot +5 points (s = 1 point), fs.prototype.16 −5 points,
  // fs.tip.16 +0.5 points with s = 2 points (CI covers 0), at 1500 steps equal to 0.2
  const rows: Row[] = [
    ...runs('lixp-scale', scale('lixp', 3000), 'zeroShot', 0.75, 0.01),
    ...runs('lixp-scale', scale('siglip', 3000), 'zeroShot', 0.7, 0.01),
    ...runs('lixp-scale', scale('lixp', 3000), 'fs.prototype.16', 0.6, 0.01),
    ...runs('lixp-scale', scale('siglip', 3000), 'fs.prototype.16', 0.65, 0.01),
    ...runs('lixp-scale', scale('lixp', 3000), 'fs.tip.16', 0.605, 0.02),
    ...runs('lixp-scale', scale('siglip', 3000), 'fs.tip.16', 0.6, 0.02),
    ...runs('lixp-scale', scale('lixp', 1500), 'zeroShot', 0.702, 0.001),
    ...runs('lixp-scale', scale('siglip', 1500), 'zeroShot', 0.7, 0.001),
  ];
  saveResults('lixp-scale', toTable(rows), dir);
  return dir;
}

test('the difference CI is Welch’s: equal spreads and n = 3 → t(4)·s·√(2/3)', () => {
  const d = differenceCI([0.74, 0.75, 0.76], [0.69, 0.7, 0.71]);
  assert.ok(Math.abs(d.diff - 0.05) < 1e-12);
  assert.ok(Math.abs(d.ci95 - tCritical(4) * 0.01 * Math.sqrt(2 / 3)) < 1e-12);
  assert.ok(Number.isNaN(differenceCI([0.7], [0.6, 0.7]).ci95), 'one seed: no CI');
});

test('the rule on numbers, and a flipped sign flips the verdict', () => {
  assert.equal(verdictOf('greater', 0.05, 0.02), 'reproduced in direction');
  assert.equal(verdictOf('greater', -0.05, 0.02), 'not reproduced');
  assert.equal(verdictOf('greater', 0.01, 0.02), 'inconclusive');
  assert.equal(verdictOf('less', -0.05, 0.02), 'reproduced in direction');
  assert.equal(verdictOf('less', 0.05, 0.02), 'not reproduced');
  assert.equal(verdictOf('equal', 0.002, 0.005), 'reproduced in direction');
  assert.equal(verdictOf('equal', 0.05, 0.02), 'not reproduced');
  assert.equal(verdictOf('equal', -0.05, 0.02), 'not reproduced');
  assert.equal(verdictOf('equal', 0.008, 0.005), 'inconclusive');
  assert.equal(verdictOf('greater', 0.05, Number.NaN), 'inconclusive');
  assert.equal(verdictOf('greater', Number.NaN, Number.NaN), 'not measured');
  for (const [d, ci] of [
    [0.05, 0.02],
    [0.03, 0.01],
    [0.2, 0.19],
  ]) {
    assert.equal(verdictOf('greater', d, ci), 'reproduced in direction');
    assert.equal(verdictOf('greater', -d, ci), 'not reproduced');
    assert.equal(verdictOf('less', -d, ci), 'reproduced in direction');
  }
});

test('orders: any pair failing fails the order; all reproduced reproduce it', () => {
  const r = 'reproduced in direction' as const;
  assert.equal(groupVerdict([r, r, r]), r);
  assert.equal(groupVerdict([r, 'inconclusive']), 'inconclusive');
  assert.equal(groupVerdict([r, 'not measured']), 'not measured');
  assert.equal(groupVerdict(['not measured', 'not reproduced']), 'not reproduced');
});

test('a synthetic result set gives its known verdicts, read from results tables', () => {
  const dir = fixture();
  try {
    const claims: Claim[] = [
      claim({ id: 'zs-up' }),
      claim({ id: 'zs-flipped', a: 'siglip@3000', b: 'lixp@3000' }),
      claim({ id: 'zs-less', expect: 'less' }),
      claim({ id: 'proto', metric: 'fs.prototype.16' }),
      claim({ id: 'tip', metric: 'fs.tip.16' }),
      claim({ id: 'mean', metric: ['fs.prototype.16', 'fs.tip.16'] }),
      claim({ id: 'equal-1500', a: 'lixp@1500', b: 'siglip@1500', expect: 'equal' }),
      claim({ id: 'equal-3000', expect: 'equal' }),
      claim({ id: 'one-sample', b: null }),
      claim({ id: 'no-metric', metric: 'fs.knn-rank.16' }),
      claim({ id: 'no-grid', grid: 'llip-k', a: 'K=4', b: 'K=1' }),
    ];
    const got = Object.fromEntries(evaluateClaims(claims, dir).map((r) => [r.claim.id, r]));
    const expected: Record<string, string> = {
      'zs-up': 'reproduced in direction',
      'zs-flipped': 'not reproduced',
      'zs-less': 'not reproduced',
      proto: 'not reproduced',
      tip: 'inconclusive',
      mean: 'inconclusive', // per-run mean of the two: −2.25 ± 3.4 points
      'equal-1500': 'reproduced in direction',
      'equal-3000': 'not reproduced',
      'one-sample': 'reproduced in direction',
      'no-metric': 'not measured',
      'no-grid': 'not measured',
    };
    for (const [id, v] of Object.entries(expected)) assert.equal(got[id].verdict, v, id);
    // each verdict follows from its own numbers by the rule
    for (const r of Object.values(got))
      if (r.verdict !== 'not measured')
        assert.equal(verdictOf(r.claim.expect, r.diff, r.ci95), r.verdict, r.claim.id);
    assert.ok(Math.abs(got['zs-up'].diff - 0.05) < 1e-9);
    assert.equal(got['zs-up'].a?.n, 3);
    assert.match(got['no-grid'].note, /npm run sweep -- llip-k/);
    assert.match(got['no-metric'].note, /no runs of .* with this metric/);
    // the table shows the numbers in points with the verdict
    const rows = verdictRows([got['zs-up']]);
    assert.equal(rows[0]['A − B (95% CI)'].startsWith('+5.0 ± '), true);
    assert.match(rows[0].verdict, /reproduced in direction/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('runValues: a run needs every metric of a mean, and its last step counts', () => {
  const rows: Row[] = [
    ...runs('lixp-scale', scale('lixp', 3000), 'a', 0.5, 0.1),
    ...runs('lixp-scale', scale('lixp', 3000), 'b', 0.7, 0.1),
  ].map((r) => ({ ...r, run: String(r.seed) }));
  rows.push({ ...rows[0], step: 50, value: 99 }); // an earlier step is ignored
  assert.deepEqual(
    runValues(rows, 'lixp-scale', ['a', 'b'])
      .get('lixp@3000')
      ?.map((v) => +v.toFixed(6)),
    [0.5, 0.6, 0.7],
  );
  assert.equal(runValues(rows, 'lixp-scale', ['a', 'c']).size, 0);
});

test('REPORT.md: header, rule, verdicts, what is not measured', () => {
  const dir = fixture();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-report-out-'));
  try {
    const results = writeReport({ grids: [], dir, outDir: out, backend: 'test backend' });
    const md = fs.readFileSync(path.join(out, 'REPORT.md'), 'utf8');
    assert.match(md, /^# Reproduction report/);
    assert.match(md, /## The verdict rule/);
    assert.match(md, /backend: test backend/);
    assert.match(md, /\|lixp-scale\|12 \/ \?\|0, 1, 2\|/);
    assert.match(md, /npm run sweep -- lixp-ablations/);
    assert.match(reportMarkdown({ results, scales: [] }), new RegExp(`${results.length} claims`));
    const html = fs.readFileSync(path.join(out, 'REPORT.html'), 'utf8');
    assert.match(html, /<table/);
    assert.doesNotMatch(html, /https?:\/\//, 'offline: no external resources');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('every claim names groups its grid defines (sweeps/<grid>.ts, run or not)', () => {
  for (const grid of new Set(CLAIMS.map((c) => c.grid))) {
    // the axis cells a filed run would have (objects as the JSON text the table stores)
    const specs = expandGrid(require(`../sweeps/${grid}`).default as Grid);
    const rows = specs.map((s) =>
      Object.fromEntries(
        Object.entries(s.axes).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : v]),
      ),
    ) as Row[];
    const labels = new Set(rows.map((r) => GRID_GROUPS[grid](r)));
    for (const c of CLAIMS.filter((x) => x.grid === grid))
      for (const g of [c.a, c.b])
        if (g !== null) assert.ok(labels.has(g), `${c.id}: ${g} not in ${[...labels]}`);
  }
});
