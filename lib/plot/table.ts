/**
 * The one results-table helper of the lab. Rows (or an arquero table) become an HTML
 * table in a notebook, an aligned text table in a terminal and GitHub Markdown for a
 * README, all with the same number formatting, so a result reads the same everywhere.
 */
import { type ColumnTable, from } from 'arquero';
import { displayBundle, escapeHtml } from './plot';

export type Rows = Record<string, unknown>[];
export type TableInput = Rows | ColumnTable;
export type TableOptions = { title?: string; digits?: number };

type Cell = (v: unknown) => string;

const DEFAULT_DIGITS = 3;

function toTable(input: TableInput): ColumnTable {
  return Array.isArray(input) ? from(input) : input;
}

/**
 * Formats a number with `digits` decimals; tiny non-zero values switch to exponent
 * notation instead of printing as 0.000 (a loss of 1e-5 is not zero).
 */
export function formatNumber(v: number, digits = DEFAULT_DIGITS): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a < 0.5 * 10 ** -digits || a >= 1e15 ? v.toExponential(digits) : v.toFixed(digits);
}

function isNumericColumn(values: unknown[]): boolean {
  const present = values.filter((v) => v != null);
  return present.length > 0 && present.every((v) => typeof v === 'number');
}

/**
 * One formatter per column. A column of whole numbers (steps, shot counts) prints as
 * integers; any fractional value puts the whole column on `digits` decimals, so 1.0
 * next to 0.953 reads 1.000.
 */
function columnFormats(t: ColumnTable, digits: number): Record<string, Cell> {
  const formats: Record<string, Cell> = {};
  for (const name of t.columnNames()) {
    const values = t.array(name) as unknown[];
    const whole = values.every((v) => typeof v !== 'number' || Number.isInteger(v));
    formats[name] = (v) => {
      if (v == null) return '';
      if (typeof v !== 'number') return String(v);
      return whole || !Number.isFinite(v) ? String(v) : formatNumber(v, digits);
    };
  }
  return formats;
}

/** Right-align numeric columns, left-align the rest. */
function columnAligns(t: ColumnTable): Record<string, 'l' | 'r'> {
  const align: Record<string, 'l' | 'r'> = {};
  for (const name of t.columnNames()) {
    align[name] = isNumericColumn(t.array(name) as unknown[]) ? 'r' : 'l';
  }
  return align;
}

/** Aligned plain-text table (terminal, `text/plain`), optional title on top. */
export function toText(input: TableInput, digits = DEFAULT_DIGITS, title?: string): string {
  const t = toTable(input);
  const names = t.columnNames();
  const formats = columnFormats(t, digits);
  const align = columnAligns(t);
  const body = (t.objects() as Rows).map((row) => names.map((n) => formats[n](row[n])));
  const widths = names.map((n, j) => Math.max(n.length, ...body.map((r) => r[j].length)));
  const pad = (s: string, j: number) =>
    align[names[j]] === 'r' ? s.padStart(widths[j]) : s.padEnd(widths[j]);
  const line = (cells: string[]) => cells.map(pad).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const lines = [line(names), rule, ...body.map(line)];
  return (title ? [title, ...lines] : lines).join('\n');
}

/** GitHub-flavoured Markdown table for READMEs and reports. */
export function toMarkdown(input: TableInput, digits = DEFAULT_DIGITS): string {
  const t = toTable(input);
  return t.toMarkdown({ format: columnFormats(t, digits), align: columnAligns(t) });
}

/** HTML table with a caption; arquero escapes cell text. */
export function toHtml(input: TableInput, digits = DEFAULT_DIGITS, title?: string): string {
  const t = toTable(input);
  const html = t.toHTML({
    format: columnFormats(t, digits),
    align: columnAligns(t),
    style: { th: 'padding: 2px 8px;', td: 'padding: 2px 8px; font-variant-numeric: tabular-nums;' },
  });
  const caption = title
    ? `<caption style="text-align: left; font-weight: bold;">${escapeHtml(title)}</caption>`
    : '';
  return html.replace(/^<table([^>]*)>/, (m) => m + caption);
}

/**
 * Shows a results table: HTML + text in one notebook output under tslab, an aligned
 * text table on stdout elsewhere. Returns nothing so tslab does not echo it again.
 */
export function showTable(input: TableInput, opts: TableOptions = {}): void {
  const digits = opts.digits ?? DEFAULT_DIGITS;
  const text = toText(input, digits, opts.title);
  const html = toHtml(input, digits, opts.title);
  if (!displayBundle({ 'text/html': html, 'text/plain': text })) console.log(text);
}
