/**
 * Small statistics shared by the results table (mean ± CI over seeds) and the
 * few-shot suite (mean ± CI over support draws): Student-t 95% intervals.
 */

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
  2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
  2.045, 2.042,
];

/** t_{0.975, df}: the table up to 30, then 1.96 + 2.5/df (within 0.003 of the exact value). */
export function tCritical(df: number): number {
  if (df < 1) return Number.NaN;
  return df <= 30 ? T975[df - 1] : 1.96 + 2.5 / df;
}

/** mean, sample std, n and the 95% CI half-width t·std/√n (NaN for n = 1). */
export function meanCI(xs: number[]): { mean: number; std: number; n: number; ci95: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : Number.NaN;
  return { mean, std, n, ci95: n > 1 ? (tCritical(n - 1) * std) / Math.sqrt(n) : Number.NaN };
}
