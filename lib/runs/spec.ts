/**
 * What a run is, as data: a grid (preset, base overrides, axes, seeds) expands
 * into run specs, each with a stable id — a hash of its validated config — so a
 * rerun skips finished work. A spec is data from elsewhere (a grid file, or a
 * Redis job anyone with the queue could have written): `validateSpec` checks it
 * whole (exact keys, grid name, own preset, dotted set keys, the config gate,
 * the id recomputed) before anything touches the disk or spawns.
 */
import { createHash } from 'node:crypto';
import {
  type DeepPartial,
  type ExperimentConfig,
  fromDotted,
  makeConfig,
  PRESETS,
} from '../config/presets';
import { ConfigError } from '../config/schema';

/** A grid: the preset and base overrides every run shares, the axes it varies, the seeds. */
export interface Grid {
  name: string;
  preset: string;
  base?: DeepPartial<ExperimentConfig>;
  /** dotted config keys → the values to try, e.g. `{ loss: ['siglip', 'clip'] }` */
  axes: Record<string, unknown[]>;
  seeds: number[];
  /**
   * Post-training: each run starts from the tower weights of the run of `grid`
   * (with that preset and those settings) that has the same seed; its id goes into
   * the config as `initFrom`, so the sweep must have run that grid in the same --out.
   */
  init?: { grid: string; preset: string; sets: Record<string, unknown> };
}

/** One expanded run: everything a worker on any machine needs to start it. */
export interface RunSpec {
  id: string;
  grid: string;
  preset: string;
  seed: number;
  /** the axis values of this run (config columns of the results table) */
  axes: Record<string, unknown>;
  /** dotted key → value, passed to the train CLI as `--set key=json` */
  sets: Record<string, unknown>;
}

/** Where and how a run ran (the table's last columns); also in `<run>/run.json`. */
export interface RunMeta {
  id: string;
  backend: string;
  commit: string;
  host: string;
  duration: number; // wall seconds of the train process
}

/** JSON with sorted keys, so two equal configs always hash the same. */
export function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(x);
}

/** The run id: a hash of the validated merged config (which holds the seed). */
export function configId(cfg: ExperimentConfig): string {
  return createHash('sha256').update(stableJson(cfg)).digest('hex').slice(0, 12);
}

/** `{a: {b: 1}}` → `{'a.b': 1}`; arrays and empty objects are leaves (`eval.fewShot: {}` turns the suite on). */
export function flatten(x: object, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const nested = v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;
    if (nested) Object.assign(out, flatten(v, key));
    else out[key] = v;
  }
  return out;
}

/** The config a spec trains: its preset, seed and dotted settings through the one gate. */
export function specConfig(spec: Pick<RunSpec, 'preset' | 'sets' | 'seed'>): ExperimentConfig {
  return makeConfig(spec.preset, fromDotted({ ...spec.sets, seed: spec.seed }));
}

/** A grid name: it becomes the folder `<out>/<grid>/`, so nothing that could climb out of it. */
export const GRID_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** A run id: `configId`'s 12 hex digits. */
const RUN_ID = /^[0-9a-f]{12}$/;
/** A dotted config key as `--set` takes it: identifiers joined by dots. */
const SET_KEY = /^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/;
const SPEC_KEYS = ['axes', 'grid', 'id', 'preset', 'seed', 'sets'];

/** A failed train process (its exit code: 0 done, 2 config, 3 checkpoint, 4 diverged). */
export class RunError extends Error {
  exitCode = 1;
}

/** A spec refused before anything ran: permanent (exit code 2, like a bad config). */
export class SpecError extends RunError {
  override exitCode = 2;
  override name = 'SpecError';
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A value as a rejection message shows it: JSON, cut short (it may be anything). */
function shown(x: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(x) ?? String(x);
  } catch {
    s = String(x);
  }
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/** The value at a dotted key of a config, own properties only (undefined when absent). */
function at(cfg: unknown, key: string): unknown {
  let x: unknown = cfg;
  for (const part of key.split('.')) {
    if (!isPlainObject(x) || !Object.hasOwn(x, part)) return undefined;
    x = x[part];
  }
  return x;
}

/**
 * A spec as a worker may run it, or a SpecError naming every problem: exactly the
 * keys of a RunSpec (data only: never a path or a command), a grid name matching
 * GRID_NAME, a known preset, an integer seed, `--set` keys that are dotted
 * identifiers, axes that are some of those sets; then the config through the one
 * gate (`specConfig`), and the id recomputed from it. The returned spec is built
 * from the validated parts: its sets are the values the validated config holds,
 * so the train CLI gets exactly what was checked.
 */
export function validateSpec(x: unknown): RunSpec {
  if (!isPlainObject(x)) throw new SpecError(`job: must be an object, got ${shown(x)}`);
  const bad: string[] = [];
  for (const k of Object.keys(x).filter((k) => !SPEC_KEYS.includes(k)))
    bad.push(`unexpected key ${shown(k)} (a job carries only ${SPEC_KEYS.join(', ')})`);
  const has = (k: string) => {
    if (!Object.hasOwn(x, k)) bad.push(`missing key '${k}'`);
    return Object.hasOwn(x, k);
  };
  const { grid, id, preset, seed, sets, axes } = x;
  if (has('grid') && (typeof grid !== 'string' || !GRID_NAME.test(grid)))
    bad.push(`grid: must match ${GRID_NAME}, got ${shown(grid)}`);
  if (has('id') && (typeof id !== 'string' || !RUN_ID.test(id)))
    bad.push(`id: must be 12 hex digits, got ${shown(id)}`);
  if (has('preset') && (typeof preset !== 'string' || !Object.hasOwn(PRESETS, preset)))
    bad.push(`preset: unknown preset ${shown(preset)} (have: ${Object.keys(PRESETS).join(', ')})`);
  if (has('seed') && !Number.isSafeInteger(seed))
    bad.push(`seed: must be an integer, got ${shown(seed)}`);
  if (has('sets') && !isPlainObject(sets)) bad.push(`sets: must be an object, got ${shown(sets)}`);
  else if (isPlainObject(sets))
    for (const k of Object.keys(sets).filter((k) => !SET_KEY.test(k)))
      bad.push(`sets: ${shown(k)} is not a dotted config key`);
  if (has('axes') && !isPlainObject(axes)) bad.push(`axes: must be an object, got ${shown(axes)}`);
  else if (isPlainObject(axes) && isPlainObject(sets))
    for (const [k, v] of Object.entries(axes))
      if (!Object.hasOwn(sets, k) || stableJson(sets[k]) !== stableJson(v))
        bad.push(`axes: ${shown(k)} is not one of the run's sets`);
  if (bad.length) throw new SpecError(`job: ${bad.join('; ')}`);
  const spec = x as unknown as RunSpec;
  let cfg: ExperimentConfig;
  try {
    cfg = specConfig(spec);
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : `config: ${(e as Error).message}`;
    throw new SpecError(`job ${spec.id}: ${msg}`);
  }
  const checked: Record<string, unknown> = {};
  for (const k of Object.keys(spec.sets)) {
    const v = at(cfg, k);
    if (v === undefined) throw new SpecError(`job ${spec.id}: sets: '${k}' is not in the config`);
    checked[k] = structuredClone(v);
  }
  const want = configId(cfg);
  if (want !== spec.id)
    throw new SpecError(
      `job: id '${spec.id}' is not its config's id (the config hashes to ${want})`,
    );
  const checkedAxes = Object.fromEntries(Object.keys(spec.axes).map((k) => [k, checked[k]]));
  return {
    id: want,
    grid: spec.grid,
    preset: spec.preset,
    seed: spec.seed,
    axes: checkedAxes,
    sets: checked,
  };
}

function cartesian(axes: Record<string, unknown[]>): Record<string, unknown>[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(axes)) {
    if (values.length === 0) throw new Error(`axis '${key}' has no values`);
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
  }
  return combos;
}

/** Every axis combination × every seed, axis order as written (seeds innermost). */
export function expandGrid(grid: Grid): RunSpec[] {
  if (!GRID_NAME.test(grid.name))
    throw new Error(`grid name '${grid.name}' must match ${GRID_NAME} (it names a folder)`);
  const base = flatten(grid.base ?? {});
  const runs = cartesian(grid.axes).flatMap((axes) =>
    grid.seeds.map((seed) => {
      const sets: Record<string, unknown> = { ...base, ...axes };
      if (grid.init) {
        const from = configId(specConfig({ preset: grid.init.preset, sets: grid.init.sets, seed }));
        sets.initFrom = `${grid.init.grid}/${from}`;
      }
      const id = configId(specConfig({ preset: grid.preset, sets, seed }));
      return validateSpec({ id, grid: grid.name, preset: grid.preset, seed, axes, sets });
    }),
  );
  if (new Set(runs.map((r) => r.id)).size < runs.length)
    throw new Error(`${grid.name}: repeated config`);
  return runs;
}
