/**
 * The experiment config's schema, declared once: each section comes from the
 * module that owns it (towers from model/, objectives from the registry, AdamW
 * from train/), the TypeScript type is derived from it, and `validateConfig` is
 * the one gate every config passes (makeConfig calls it, so notebooks, the CLI,
 * sweeps and tests all get the same errors). A typo or an impossible value costs
 * a one-line error naming the field, with the nearest valid key for a misspelt
 * one, never an hour of training or a shape error deep inside a tower.
 */
import * as v from 'valibot';
import { IMAGE_SIZE } from '../data/types';
import { defaultWorldConfig, type WorldConfig } from '../data/world';
import { FewShotSchema } from '../eval/fewshot-suite';
import { ImageTowerSchema, TextTowerSchema } from '../model/config';
import {
  OBJECTIVE_NAMES,
  OBJECTIVES,
  type ObjectiveConfig,
  ObjectiveSchema,
  objectiveOf,
} from '../objectives/index';
import { describe, int, intList, num, text } from '../schema';
import { OptimSchema } from '../train/optim';

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

/** A world override: any subset of defaultWorldConfig's keys, each of its default's kind. */
function worldRule(key: string, d: unknown): v.GenericSchema {
  if (typeof d === 'number') {
    if (/Scenes$|contextLength/.test(key)) return int({ min: 1 });
    return /Prob$|Jitter$/.test(key) ? num({ min: 0, max: 1 }) : int();
  }
  if (Array.isArray(d))
    return v.array(v.unknown(), (i) => `must be an array, got ${describe(i.input)}`);
  if (typeof d === 'boolean')
    return v.boolean((i) => `must be a boolean, got ${describe(i.input)}`);
  return text;
}

const WorldSchema = v.strictObject(
  Object.fromEntries(
    [...Object.entries(defaultWorldConfig), ['fashionMnistDir', '']].map(([k, d]) => [
      k,
      v.optional(worldRule(k, d)),
    ]),
  ),
) as unknown as v.GenericSchema<unknown, Partial<WorldConfig>>;

const EvalSchema = v.strictObject({
  every: int({ min: 0 }), // evaluate every N steps during training (0: only at the end)
  queryPerClass: int({ min: 1 }), // query images per class in each task
  supportPerClass: int({ min: 1 }), // support pool per class for k-shot draws
  shots: intList(1), // k of the k-shot prototype evaluation
  episodes: int({ min: 1 }), // random support draws averaged per k
  // the few-shot suite (eval/fewshot-suite.ts) at the end of a run, when present
  fewShot: v.optional(FewShotSchema),
});

export const ExperimentSchema = v.strictObject({
  name: text,
  seed: int(), // seeds model init, batch order and few-shot draws
  objective: ObjectiveSchema, // what is trained: objectives/<name>.ts, its hyper-parameters
  steps: int({ min: 1 }),
  batchSize: int({ min: 2 }), // a contrastive batch needs at least one negative
  chunkSize: int({ min: 0 }), // backprop chunk (0: whole batch); bounds memory for large batches
  model: v.strictObject({
    image: ImageTowerSchema,
    text: TextTowerSchema, // vocabulary and context length come from the tokenizer
    embedDim: int({ min: 1 }), // shared embedding size E
  }),
  optim: OptimSchema,
  world: WorldSchema,
  eval: EvalSchema,
  /**
   * Post-training: the run `<grid>/<run id>` of the same sweep folder whose tower
   * weights start this one (the objective's own parameters start from the config).
   * Data, not a path: the sweep resolves it inside its --out (a Grid's `init`).
   */
  initFrom: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^[a-z0-9][a-z0-9-]{0,63}\/[0-9a-f]{12}$/,
        (i) => `must be '<grid>/<run id>', got ${JSON.stringify(i.input)}`,
      ),
    ),
  ),
});

export type ExperimentConfig = Omit<v.InferOutput<typeof ExperimentSchema>, 'objective'> & {
  objective: ObjectiveConfig;
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
  for (const k of valid) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

type AnySchema = {
  type: string;
  entries?: Record<string, AnySchema>;
  options?: AnySchema[];
  key?: string;
  wrapped?: AnySchema;
  literal?: unknown;
};

/** The object schema reached by following `keys` (choosing a variant's option by its input). */
function schemaAt(root: unknown, keys: string[], input: unknown): AnySchema | undefined {
  let s = root as AnySchema | undefined;
  let x = input;
  for (const k of [...keys, null]) {
    while (s?.wrapped) s = s.wrapped;
    if (s?.type === 'variant' && s.options && s.key) {
      const want = (x as Record<string, unknown> | undefined)?.[s.key];
      s = s.options.find((o) => o.entries?.[s!.key!]?.literal === want);
    }
    if (k === null || !s?.entries) return s;
    s = s.entries[k];
    x = (x as Record<string, unknown> | undefined)?.[k];
  }
  return s;
}

/** For an objective's unknown key: which objectives have it ("; alpha belongs to lixp"). */
function owners(keys: string[], key: string): string {
  if (keys.length !== 2 || keys[0] !== 'objective') return '';
  const have = OBJECTIVE_NAMES.filter((n) => key in OBJECTIVES[n].defaults);
  return have.length ? `; '${key}' belongs to ${have.join(', ')} (objective.name=${have[0]})` : '';
}

/** A valibot issue as a ConfigError: the field's dotted path and a problem in our words. */
function toConfigError(issue: v.BaseIssue<unknown>, input: unknown): ConfigError {
  const keys = (issue.path ?? []).map((p) => String(p.key));
  const field = keys.join('.') || 'config';
  const isObject = issue.type === 'strict_object' || issue.type === 'object';
  if (isObject && issue.expected === 'never') {
    const valid = Object.keys(schemaAt(ExperimentSchema, keys.slice(0, -1), input)?.entries ?? {});
    const key = keys[keys.length - 1];
    const near = nearestKey(key, valid);
    return new ConfigError(
      field,
      `unknown key${near ? ` (did you mean '${near}'?)` : ''}${owners(keys, key)}`,
    );
  }
  if (isObject && issue.received === 'undefined' && keys.length)
    return new ConfigError(field, 'missing');
  if (issue.type === 'variant' && issue.input === undefined) {
    // no discriminator: perhaps it is misspelt, e.g. objective.nmae
    const parent = keys.slice(0, -1);
    const obj = parent.reduce<unknown>((x, k) => (x as Record<string, unknown>)?.[k], input);
    const options = schemaAt(ExperimentSchema, parent.slice(0, -1), input)?.entries?.[
      parent[parent.length - 1]
    ]?.options;
    const known = new Set((options ?? []).flatMap((o) => Object.keys(o.entries ?? {})));
    const stray = Object.keys((obj as object) ?? {}).find((k) => !known.has(k));
    if (stray) {
      const near = nearestKey(stray, [...known]);
      return new ConfigError([...parent, stray].join('.'), `unknown key (did you mean '${near}'?)`);
    }
  }
  if (isObject || (issue.type === 'variant' && issue.expected === 'Object'))
    return new ConfigError(field, `must be an object, got ${describe(issue.input)}`);
  return new ConfigError(field, issue.message);
}

/** Rules across fields, after every field passed its own. */
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
  const sizes = { embedDim: c.model.embedDim, imageWidth: im.width };
  const bad = objectiveOf(c.objective).check?.(c.objective, sizes);
  if (bad) throw new ConfigError(`objective.${bad[0]}`, bad[1]);
}

/**
 * Throws a ConfigError naming the first bad field: unknown keys (with the
 * nearest valid key), missing keys, wrong types, out-of-range values, and
 * inconsistent combinations. Returns the config, typed.
 */
export function validateConfig(cfg: unknown): ExperimentConfig {
  const r = v.safeParse(ExperimentSchema, cfg);
  if (!r.success) {
    // a misspelt key also leaves its real key missing: name the misspelling, it says more
    const unknown = r.issues.find((i) => i.expected === 'never');
    throw toConfigError(unknown ?? r.issues[0], cfg);
  }
  const c = cfg as ExperimentConfig;
  crossChecks(c);
  return c;
}
