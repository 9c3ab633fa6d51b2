/**
 * Validation of an ExperimentConfig before any work starts: a typo or an
 * impossible value should cost a one-line error naming the field, not an hour
 * of training or a shape error deep inside a tower. Every config path (presets,
 * `--set` overrides, sweeps, notebook overrides) can call `validateConfig`.
 *
 * The schema below mirrors `ExperimentConfig` in presets.ts; cross-field rules
 * (heads divide widths, shots fit the support pool) come after the per-field ones.
 */
import { IMAGE_SIZE } from '../data/types';
import { defaultWorldConfig } from '../data/world';
import type { ExperimentConfig } from './presets';

/** A config problem; `field` is the dotted path of the offending key. */
export class ConfigError extends Error {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`config: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type NumRule = { kind: 'int' | 'num'; min?: number; max?: number; above?: number; below?: number };
type Rule =
  | NumRule
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'string' }
  | { kind: 'intList'; min: number }
  | { kind: 'object'; fields: Record<string, Rule> }
  | { kind: 'world' };

const int = (min?: number): NumRule => ({ kind: 'int', min });
const num = (r: Omit<NumRule, 'kind'>): NumRule => ({
  kind: 'num',
  ...r,
});

/** Loss names the training loop knows; extend when a loss is added to losses.ts. */
export const LOSS_NAMES = ['siglip', 'clip'] as const;

const tower = {
  width: int(1),
  depth: int(1),
  heads: int(1),
  mlpRatio: num({ above: 0 }),
};

const SCHEMA: Rule = {
  kind: 'object',
  fields: {
    name: { kind: 'string' },
    seed: int(),
    loss: { kind: 'enum', values: LOSS_NAMES },
    steps: int(1),
    batchSize: int(2), // a contrastive batch needs at least one negative
    chunkSize: int(0),
    model: {
      kind: 'object',
      fields: {
        image: {
          kind: 'object',
          fields: {
            imageSize: int(1),
            patch: int(1),
            ...tower,
            pool: { kind: 'enum', values: ['cls', 'mean', 'map'] },
            registers: int(0),
          },
        },
        text: { kind: 'object', fields: tower },
        embedDim: int(1),
      },
    },
    optim: {
      kind: 'object',
      fields: {
        lr: num({ above: 0 }),
        warmupSteps: int(0),
        minLrRatio: num({ min: 0, max: 1 }),
        weightDecay: num({ min: 0 }),
        beta1: num({ min: 0, below: 1 }),
        beta2: num({ min: 0, below: 1 }),
        eps: num({ above: 0 }),
        gradClip: num({ min: 0 }),
      },
    },
    world: { kind: 'world' },
    eval: {
      kind: 'object',
      fields: {
        every: int(0),
        queryPerClass: int(1),
        supportPerClass: int(1),
        shots: { kind: 'intList', min: 1 },
        episodes: int(1),
      },
    },
  },
};

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The valid key closest to `key` (case-insensitive edit distance). */
export function nearestKey(key: string, valid: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const v of valid) {
    const d = editDistance(key.toLowerCase(), v.toLowerCase());
    if (d < bestD) [best, bestD] = [v, d];
  }
  return best;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return 'an array';
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Record<string, unknown>, valid: string[], at: string): void {
  for (const k of Object.keys(obj)) {
    if (valid.includes(k)) continue;
    const near = nearestKey(k, valid);
    throw new ConfigError(join(at, k), `unknown key${near ? ` (did you mean '${near}'?)` : ''}`);
  }
  for (const k of valid) if (!(k in obj)) throw new ConfigError(join(at, k), 'missing');
}

const join = (at: string, k: string) => (at ? `${at}.${k}` : k);

function checkNumber(v: unknown, r: NumRule, at: string): void {
  const what = r.kind === 'int' ? 'an integer' : 'a finite number';
  const ok =
    typeof v === 'number' && Number.isFinite(v) && (r.kind === 'num' || Number.isInteger(v));
  if (!ok) throw new ConfigError(at, `must be ${what}, got ${describe(v)}`);
  const n = v as number;
  const bad = (cond: boolean, msg: string) => {
    if (cond) throw new ConfigError(at, `must be ${msg}, got ${n}`);
  };
  if (r.min !== undefined) bad(n < r.min, `>= ${r.min}`);
  if (r.max !== undefined) bad(n > r.max, `<= ${r.max}`);
  if (r.above !== undefined) bad(!(n > r.above), `> ${r.above}`);
  if (r.below !== undefined) bad(!(n < r.below), `< ${r.below}`);
}

function checkRule(v: unknown, r: Rule, at: string): void {
  if (r.kind === 'int' || r.kind === 'num') checkNumber(v, r, at);
  else if (r.kind === 'string') {
    if (typeof v !== 'string' || v === '')
      throw new ConfigError(at, `must be a non-empty string, got ${describe(v)}`);
  } else if (r.kind === 'enum') {
    if (typeof v !== 'string' || !r.values.includes(v))
      throw new ConfigError(at, `must be one of ${r.values.join(', ')}, got ${describe(v)}`);
  } else if (r.kind === 'intList') {
    if (!Array.isArray(v) || v.length === 0)
      throw new ConfigError(at, `must be a non-empty array of integers, got ${describe(v)}`);
    for (let i = 0; i < v.length; i++) checkNumber(v[i], int(r.min), `${at}[${i}]`);
  } else if (r.kind === 'object') {
    if (!isObject(v))
      throw new ConfigError(at || 'config', `must be an object, got ${describe(v)}`);
    checkKeys(v, Object.keys(r.fields), at);
    for (const [k, sub] of Object.entries(r.fields)) checkRule(v[k], sub, join(at, k));
  } else checkWorld(v, at);
}

/** The world is a partial override of defaultWorldConfig: each value keeps its default's type. */
function checkWorld(v: unknown, at: string): void {
  if (!isObject(v)) throw new ConfigError(at, `must be an object, got ${describe(v)}`);
  const defaults = defaultWorldConfig as unknown as Record<string, unknown>;
  const valid = [...Object.keys(defaults), 'fashionMnistDir'];
  for (const [k, x] of Object.entries(v)) {
    const field = join(at, k);
    if (!valid.includes(k))
      throw new ConfigError(field, `unknown key (did you mean '${nearestKey(k, valid)}'?)`);
    if (x === undefined) continue;
    const d = k === 'fashionMnistDir' ? '' : defaults[k];
    if (typeof d === 'number') {
      const isCount = /Scenes$|contextLength/.test(k);
      checkNumber(
        x,
        isCount ? int(1) : /Prob$|Jitter$/.test(k) ? num({ min: 0, max: 1 }) : int(),
        field,
      );
    } else if (Array.isArray(d) !== Array.isArray(x) || typeof d !== typeof x)
      throw new ConfigError(
        field,
        `must be ${Array.isArray(d) ? 'an array' : `a ${typeof d}`}, got ${describe(x)}`,
      );
  }
}

function crossChecks(c: ExperimentConfig): void {
  const need = (ok: boolean, field: string, msg: string) => {
    if (!ok) throw new ConfigError(field, msg);
  };
  const im = c.model.image;
  need(
    im.imageSize === IMAGE_SIZE,
    'model.image.imageSize',
    `must be ${IMAGE_SIZE} (the world's images), got ${im.imageSize}`,
  );
  need(
    im.imageSize % im.patch === 0,
    'model.image.patch',
    `(${im.patch}) must divide model.image.imageSize (${im.imageSize})`,
  );
  for (const t of ['image', 'text'] as const) {
    const { width, heads, mlpRatio } = c.model[t];
    need(
      width % heads === 0,
      `model.${t}.heads`,
      `(${heads}) must divide model.${t}.width (${width})`,
    );
    need(
      Number.isInteger(mlpRatio * width),
      `model.${t}.mlpRatio`,
      `× width (${width}) must be an integer, got ${mlpRatio}`,
    );
  }
  const maxShot = Math.max(...c.eval.shots);
  need(
    maxShot <= c.eval.supportPerClass,
    'eval.shots',
    `largest k (${maxShot}) must be <= eval.supportPerClass (${c.eval.supportPerClass})`,
  );
}

/**
 * Throws a ConfigError naming the first bad field: unknown keys (with the
 * nearest valid key), missing keys, wrong types, out-of-range values, and
 * inconsistent combinations. Returns the config for chaining.
 */
export function validateConfig(cfg: ExperimentConfig): ExperimentConfig {
  checkRule(cfg, SCHEMA, '');
  crossChecks(cfg);
  return cfg;
}

/** The first dotted path where two JSON values differ, or null when they are equal. */
export function firstDifference(a: unknown, b: unknown, at = ''): string | null {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        join(at, k),
      );
      if (d !== null) return d;
    }
    return null;
  }
  return a === b ? null : at || '(root)';
}

/** "at 'x.y': A has 1, B has 2" for the first difference of two configs, or null. */
export function describeDifference(a: unknown, b: unknown, nameA: string, nameB: string) {
  const [ja, jb] = [JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b))];
  const d = firstDifference(ja, jb);
  if (d === null) return null;
  const at = (x: unknown) => {
    for (const k of d.split('.')) x = (x as Record<string, unknown> | undefined)?.[k];
    return JSON.stringify(x);
  };
  return `at '${d}': ${nameA} has ${at(ja)}, ${nameB} has ${at(jb)}`;
}

/**
 * Overrides (`--set`, notebook or sweep overrides) may only name keys of `base`:
 * throws a ConfigError naming the first unknown one and the nearest valid key.
 * World keys are checked by `validateConfig`, against the world's defaults.
 */
export function checkOverrideKeys(base: unknown, overrides: unknown, at = ''): void {
  if (!isObject(base) || !isObject(overrides) || at === 'world') return;
  const valid = Object.keys(base);
  for (const [k, v] of Object.entries(overrides)) {
    if (!valid.includes(k))
      throw new ConfigError(join(at, k), `unknown key (did you mean '${nearestKey(k, valid)}'?)`);
    checkOverrideKeys(base[k], v, join(at, k));
  }
}
