/**
 * Building blocks for the config schema (valibot), with the lab's error
 * messages: "must be an integer >= 1, got 0". Each module declares the schema
 * of its own config section with these (model/config.ts the towers,
 * objectives/*.ts their hyper-parameters, train/optim.ts AdamW, …) and
 * config/schema.ts composes them into the one gate every run passes.
 */
import * as v from 'valibot';

/** A value as an error message shows it. */
export function describe(x: unknown): string {
  if (typeof x === 'string') return `'${x}'`;
  if (Array.isArray(x)) return 'an array';
  return x === null ? 'null' : typeof x === 'object' ? 'an object' : String(x);
}

interface Bounds {
  min?: number; // x >= min
  max?: number; // x <= max
  above?: number; // x > above
  below?: number; // x < below
}

function bounded(base: v.GenericSchema<number>, b: Bounds) {
  const got = (i: { input: unknown }) => `, got ${describe(i.input)}`;
  const rules: v.PipeItem<number, number, v.BaseIssue<unknown>>[] = [];
  if (b.min !== undefined) rules.push(v.minValue(b.min, (i) => `must be >= ${b.min}${got(i)}`));
  if (b.max !== undefined) rules.push(v.maxValue(b.max, (i) => `must be <= ${b.max}${got(i)}`));
  if (b.above !== undefined) rules.push(v.gtValue(b.above, (i) => `must be > ${b.above}${got(i)}`));
  if (b.below !== undefined) rules.push(v.ltValue(b.below, (i) => `must be < ${b.below}${got(i)}`));
  return v.pipe(base, ...rules);
}

/** An integer, optionally bounded. */
export function int(b: Bounds = {}) {
  const what = (i: { input: unknown }) => `must be an integer, got ${describe(i.input)}`;
  return bounded(v.pipe(v.number(what), v.integer(what)), b);
}

/** A finite number, optionally bounded. */
export function num(b: Bounds = {}) {
  const what = (i: { input: unknown }) => `must be a finite number, got ${describe(i.input)}`;
  return bounded(v.pipe(v.number(what), v.finite(what)), b);
}

/** One of a fixed list of strings (the list is the single source of the allowed values). */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return v.picklist(values, (i) => `must be one of ${values.join(', ')}, got ${describe(i.input)}`);
}

/** A non-empty string. */
export const text = v.pipe(
  v.string((i) => `must be a non-empty string, got ${describe(i.input)}`),
  v.minLength(1, 'must be a non-empty string'),
);

/** A non-empty list of integers >= min. */
export function intList(min: number) {
  const what = (i: { input: unknown }) =>
    `must be a non-empty array of integers, got ${describe(i.input)}`;
  return v.pipe(v.array(int({ min }), what), v.minLength(1, what));
}
