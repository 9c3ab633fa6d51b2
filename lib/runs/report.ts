/**
 * The reproduction report (issue 15): each claim of report-claims.ts measured on
 * the runs of data/results/<grid>.arrow and given a verdict by ONE rule.
 *
 * The rule. For a claim about A − B, take each run's value of the metric at its
 * last step, mean ± 95% CI over seeds per group (meanCI), and the difference of
 * the two means with its 95% CI (Welch: se² = s_A²/n_A + s_B²/n_B, Student t at
 * the Welch–Satterthwaite degrees of freedom, rounded down). Then
 *   - the paper says A > B (or A < B): the CI excludes 0 on the paper's side →
 *     "reproduced in direction"; it excludes 0 on the other side → "not
 *     reproduced"; it contains 0 → "inconclusive";
 *   - the paper says A ≈ B: the CI lies inside ±margin (1 accuracy point) →
 *     "reproduced in direction"; it lies wholly outside → "not reproduced";
 *     else "inconclusive";
 *   - a group with no run (grid or metric absent) → "not measured", with the
 *     command that fills it; fewer than 2 seeds on a side → "inconclusive".
 * Order claims (a ladder, a curve) apply the rule to each adjacent pair; the
 * order's verdict: any pair not reproduced → not reproduced; else any pair not
 * measured → not measured; else all reproduced → reproduced; else inconclusive.
 */
import { meanCI, tCritical } from '../stats';
import { CLAIMS, type Claim, type Expect, GRID_GROUPS } from './report-claims';
import { loadResults, RESULTS_DIR, type Row } from './results';

export type Verdict =
  | 'reproduced in direction'
  | 'not reproduced'
  | 'inconclusive'
  | 'not measured';

/** Half-width of the "A ≈ B" band, in the metric's units (accuracy is a fraction: 1 point). */
export const EQUAL_MARGIN = 0.01;

export interface Side {
  label: string;
  values: number[];
  mean: number;
  ci95: number;
  n: number;
}

export interface ClaimResult {
  claim: Claim;
  verdict: Verdict;
  a: Side | null;
  b: Side | null;
  /** mean(A) − mean(B) (or mean(A) when b is null) and its 95% CI half-width */
  diff: number;
  ci95: number;
  /** why not measured / inconclusive, and how to fill it */
  note: string;
}

/** The difference of two means and its Welch 95% CI half-width; B null: A against 0. */
export function differenceCI(a: number[], b: number[] | null): { diff: number; ci95: number } {
  const A = meanCI(a);
  if (!b) return { diff: A.mean, ci95: A.ci95 };
  const B = meanCI(b);
  if (A.n < 2 || B.n < 2) return { diff: A.mean - B.mean, ci95: Number.NaN };
  const [va, vb] = [A.std ** 2 / A.n, B.std ** 2 / B.n];
  const se = Math.sqrt(va + vb);
  const df =
    se === 0 ? A.n + B.n - 2 : (va + vb) ** 2 / (va ** 2 / (A.n - 1) + vb ** 2 / (B.n - 1));
  return { diff: A.mean - B.mean, ci95: tCritical(Math.max(1, Math.floor(df))) * se };
}

/** The rule, on numbers: the verdict of a difference `diff` ± `ci95` for what the paper expects. */
export function verdictOf(
  expect: Expect,
  diff: number,
  ci95: number,
  margin = EQUAL_MARGIN,
): Verdict {
  if (!Number.isFinite(diff)) return 'not measured';
  if (!Number.isFinite(ci95)) return 'inconclusive';
  const [lo, hi] = [diff - ci95, diff + ci95];
  if (expect === 'equal') {
    if (lo > -margin && hi < margin) return 'reproduced in direction';
    return lo > margin || hi < -margin ? 'not reproduced' : 'inconclusive';
  }
  const [right, wrong] = expect === 'greater' ? [lo > 0, hi < 0] : [hi < 0, lo > 0];
  return right ? 'reproduced in direction' : wrong ? 'not reproduced' : 'inconclusive';
}

/** The verdict of an order from its pairs' verdicts (the rule's last line). */
export function groupVerdict(pairs: Verdict[]): Verdict {
  if (pairs.includes('not reproduced')) return 'not reproduced';
  if (pairs.includes('not measured')) return 'not measured';
  return pairs.every((v) => v === 'reproduced in direction')
    ? 'reproduced in direction'
    : 'inconclusive';
}

/** Each run's value of `metric` (a list: the per-run mean) at its last step, by group label. */
export function runValues(
  rows: Row[],
  grid: string,
  metric: Claim['metric'],
): Map<string, number[]> {
  const names = typeof metric === 'string' ? [metric] : [...metric];
  const groupOf = GRID_GROUPS[grid] ?? ((r: Row) => String(r.run));
  const last = new Map<string, Map<string, Row>>(); // run → metric → last row
  for (const r of rows) {
    if (!names.includes(r.metric as string)) continue;
    const byMetric = last.get(r.run as string) ?? new Map<string, Row>();
    const prev = byMetric.get(r.metric as string);
    if (!prev || (r.step as number) > (prev.step as number)) byMetric.set(r.metric as string, r);
    last.set(r.run as string, byMetric);
  }
  const out = new Map<string, number[]>();
  for (const byMetric of last.values()) {
    if (byMetric.size < names.length) continue; // a run without every metric of the mean
    const vals = names.map((n) => byMetric.get(n)?.value as number);
    const label = groupOf(byMetric.values().next().value as Row);
    out.set(label, [...(out.get(label) ?? []), vals.reduce((s, v) => s + v, 0) / vals.length]);
  }
  return out;
}

function side(label: string, values: number[] | undefined): Side | null {
  if (!values?.length) return null;
  const s = meanCI(values);
  return { label, values, mean: s.mean, ci95: s.ci95, n: s.n };
}

/** One claim against a grid's rows (null: the grid has no table yet). */
export function evaluateClaim(
  claim: Claim,
  rows: Row[] | null,
  margin = EQUAL_MARGIN,
): ClaimResult {
  const fill = claim.fill ?? `\`npm run sweep -- ${claim.grid}\``;
  const values = rows ? runValues(rows, claim.grid, claim.metric) : new Map<string, number[]>();
  const a = side(claim.a, values.get(claim.a));
  const b = claim.b === null ? null : side(claim.b, values.get(claim.b));
  const base = { claim, a, b, diff: Number.NaN, ci95: Number.NaN };
  const missing = [claim.a, claim.b].filter((g, i) => g !== null && !(i === 0 ? a : b));
  if (missing.length) {
    const why = !rows
      ? `no data/results/${claim.grid}.arrow`
      : `no runs of ${missing.join(' and ')} with this metric in data/results/${claim.grid}.arrow`;
    return { ...base, verdict: 'not measured', note: `${why}: ${fill}` };
  }
  const d = differenceCI(a!.values, b ? b.values : null);
  const verdict = verdictOf(claim.expect, d.diff, d.ci95, margin);
  const few = Math.min(a!.n, b?.n ?? a!.n) < 2 ? 'fewer than 2 seeds on a side' : '';
  return { ...base, ...d, verdict, note: few };
}

/** Every claim against the tables in `dir`; each grid's table is read once. */
export function evaluateClaims(claims: Claim[] = CLAIMS, dir = RESULTS_DIR): ClaimResult[] {
  const cache = new Map<string, Row[] | null>();
  const rowsOf = (grid: string) => {
    if (!cache.has(grid)) cache.set(grid, (loadResults(grid, dir)?.objects() as Row[]) ?? null);
    return cache.get(grid) ?? null;
  };
  return claims.map((c) => evaluateClaim(c, rowsOf(c.grid)));
}

/** Groups of order claims with their verdicts, in first-appearance order. */
export function groupVerdicts(
  results: ClaimResult[],
): { group: string; verdict: Verdict; pairs: number }[] {
  const groups = new Map<string, Verdict[]>();
  for (const r of results) {
    if (!r.claim.group) continue;
    groups.set(r.claim.group, [...(groups.get(r.claim.group) ?? []), r.verdict]);
  }
  return [...groups].map(([group, vs]) => ({ group, verdict: groupVerdict(vs), pairs: vs.length }));
}
