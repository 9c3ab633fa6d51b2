/**
 * The few-shot suite: every method of fewshot.ts and the linear probe, on every
 * task, for k shots per class over seeded episodes (random support draws shared
 * by all methods of an episode), from one embedding cache per (model, task).
 * Results are a tidy table, one row per task × method × k × episode, summarised
 * as mean ± Student-t 95% CI over episodes, per task or averaged over the suite.
 */
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import type { Tokenizer } from '../data/tokenizer';
import type { Task } from '../data/types';
import type { Model } from '../objectives/model';
import { objectiveOfModel } from '../objectives/model';
import { Rng } from '../rng';
import { int, num, oneOf } from '../schema';
import { meanCI } from '../stats';
import { accuracyOfScores, classTexts, imageSide, sampleShots, scores } from './evaluate';
import {
  crossValidateTip,
  nearestNeighbours,
  oneHotLabels,
  prototypeLogits,
  TIP_DEFAULTS,
  tipFromCosines,
  type Vote,
  voteLogits,
} from './fewshot';
import { linearProbe, PROBE_DEFAULTS, type ProbeOptions } from './probe';

export const FEWSHOT_METHODS = [
  'zero-shot',
  'prototype',
  'tip',
  'tip-cv',
  'knn-plurality',
  'knn-rank',
  'knn-softmax',
  'linear-probe',
] as const;
export type FewShotMethod = (typeof FEWSHOT_METHODS)[number];

const numList = (b: Parameters<typeof num>[0]) =>
  v.pipe(v.array(num(b)), v.minLength(1, 'must be a non-empty array of numbers'));

/**
 * `eval.fewShot` of a config: present (even `{}`), a run ends with the whole
 * suite; every key optional, defaults in FEWSHOT_DEFAULTS.
 */
export const FewShotSchema = v.strictObject({
  methods: v.optional(v.pipe(v.array(oneOf(FEWSHOT_METHODS)), v.minLength(1, 'must not be empty'))),
  tip: v.optional(
    v.strictObject({
      alpha: v.optional(num({ min: 0 })), // the "tip" method's α (published default 1)
      beta: v.optional(num({ min: 0 })), // and β (5.5)
      alphas: v.optional(numList({ min: 0 })), // the grids "tip-cv" searches
      betas: v.optional(numList({ min: 0 })),
    }),
  ),
  knn: v.optional(
    v.strictObject({
      neighbours: v.optional(int({ min: 0 })), // 0: k shots per class (1-NN at one shot)
      temperature: v.optional(num({ min: 0.012 })), // softmax vote; exp(1/T) stays finite in float32
    }),
  ),
  probe: v.optional(
    v.strictObject({
      steps: v.optional(int({ min: 1 })),
      lr: v.optional(num({ above: 0, max: 1 })), // stable up to 1 for λ <= 1 (probe.ts)
      momentum: v.optional(num({ min: 0, below: 1 })),
      folds: v.optional(int({ min: 2 })),
      lambdas: v.optional(numList({ above: 0, max: 1 })),
    }),
  ),
});
export type FewShotConfig = v.InferOutput<typeof FewShotSchema>;

export interface FewShotOptions {
  methods: FewShotMethod[];
  shots: number[];
  episodes: number;
  seed: number;
  tip: { alpha: number; beta: number; alphas: number[]; betas: number[] };
  knn: { neighbours: number; temperature: number };
  probe: ProbeOptions;
}

export const FEWSHOT_DEFAULTS: FewShotOptions = {
  methods: [...FEWSHOT_METHODS],
  shots: [1, 2, 4, 8, 16, 32, 64],
  episodes: 10,
  seed: 0,
  tip: {
    ...TIP_DEFAULTS,
    // 100·cos puts the text term on CLIP's scale; the cache term needs α up to ~10³ to matter
    alphas: [0, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    betas: [0.5, 1, 2, 3.5, 5.5, 8, 12, 20],
  },
  knn: { neighbours: 0, temperature: 0.07 },
  probe: PROBE_DEFAULTS,
};

/** The suite's options from a config's `eval` section and seed (missing keys: the defaults). */
export function fewShotSettings(
  evalCfg: { shots: number[]; episodes: number; fewShot?: FewShotConfig },
  seed: number,
): FewShotOptions {
  const f = evalCfg.fewShot ?? {};
  const d = FEWSHOT_DEFAULTS;
  return {
    methods: f.methods ?? d.methods,
    shots: evalCfg.shots,
    episodes: evalCfg.episodes,
    seed,
    tip: { ...d.tip, ...f.tip },
    knn: { ...d.knn, ...f.knn },
    probe: { ...d.probe, ...f.probe },
  };
}

/** One (model, task)'s embeddings: what every method and episode reads. */
export interface EmbeddingCache {
  task: string;
  numClasses: number;
  /** unit query vectors [Nq, E] (the objective's imageVectors) */
  query: tf.Tensor2D;
  queryLabels: Int32Array;
  /** zero-shot cosines of the queries [Nq, C] (the objective's similarity) */
  queryText: tf.Tensor2D;
  /** unit vectors of the whole support pool [Ns, E] */
  support: tf.Tensor2D;
  supportLabels: Int32Array;
  /** zero-shot cosines of the support pool [Ns, C] (tip-cv's leave-one-out reads them) */
  supportText: tf.Tensor2D;
}

/** Embeds a task's query and support images and class prompts once. */
export function embeddingCache(model: Model, tok: Tokenizer, task: Task): EmbeddingCache {
  const obj = objectiveOfModel(model);
  const text = classTexts(model, tok, task.classNames, task.templates);
  const side = (images: Float32Array) => {
    const s = imageSide(model, images);
    const out = tf.tidy(() => [
      obj.imageVectors(s, model.params, model.objective),
      scores(model, s, text),
    ]);
    tf.dispose(Object.values(s));
    return out as tf.Tensor2D[];
  };
  const [query, queryText] = side(task.query.images);
  const [support, supportText] = side(task.support.images);
  tf.dispose(Object.values(text));
  return {
    task: task.name,
    numClasses: task.classNames.length,
    query,
    queryLabels: task.query.labels,
    queryText,
    support,
    supportLabels: task.support.labels,
    supportText,
  };
}

export function disposeCache(c: EmbeddingCache): void {
  tf.dispose([c.query, c.queryText, c.support, c.supportText]);
}

/** One method's accuracy in one episode; `chosen` names what it picked or used. */
export interface EpisodeRow {
  task: string;
  method: FewShotMethod;
  k: number;
  episode: number;
  accuracy: number;
  chosen: string;
}

/** FNV-1a of the episode's coordinates: each draw has its own stream, shared by all methods. */
function episodeRng(seed: number, task: string, k: number, e: number): Rng {
  let h = 0x811c9dc5;
  for (const ch of `${seed}/${task}/${k}/${e}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return new Rng(h >>> 0);
}

/** The support rows of one episode: k per class from the pool, in a shuffled order. */
export function drawEpisode(c: EmbeddingCache, k: number, rng: Rng): number[] {
  return rng.shuffle(sampleShots(c.supportLabels, c.numClasses, k, rng).flat());
}

/** Every method but zero-shot on one episode's support rows `idx`. */
function episode(c: EmbeddingCache, idx: number[], k: number, o: FewShotOptions) {
  const out: [FewShotMethod, number, string][] = [];
  const has = (m: FewShotMethod) => o.methods.includes(m);
  const C = c.numClasses;
  const y = Int32Array.from(idx, (i) => c.supportLabels[i]);
  const acc = (logits: tf.Tensor2D) => {
    const a = accuracyOfScores(logits, c.queryLabels);
    logits.dispose();
    return a;
  };
  tf.tidy(() => {
    const at = tf.tensor1d(idx, 'int32');
    const s = tf.gather(c.support, at) as tf.Tensor2D; // [kC, E]
    const affinity = tf.matMul(c.query, s, false, true) as tf.Tensor2D; // [Nq, kC]
    const onehot = oneHotLabels(y, C);
    if (has('prototype')) out.push(['prototype', acc(prototypeLogits(c.query, s, y, C)), '']);
    const tip = (p: { alpha: number; beta: number }) =>
      acc(tipFromCosines(c.queryText, affinity, onehot, p));
    if (has('tip')) out.push(['tip', tip(o.tip), `alpha=${o.tip.alpha},beta=${o.tip.beta}`]);
    if (has('tip-cv')) {
      const sText = tf.gather(c.supportText, at) as tf.Tensor2D;
      const p = crossValidateTip(s, y, C, sText, o.tip, o.tip);
      out.push(['tip-cv', tip(p), `alpha=${p.alpha},beta=${p.beta}`]);
    }
    const votes = (['plurality', 'rank', 'softmax'] as Vote[]).filter((w) => has(`knn-${w}`));
    if (votes.length) {
      const n = Math.min(o.knn.neighbours || k, idx.length);
      const nb = nearestNeighbours(affinity, n);
      for (const w of votes)
        out.push([`knn-${w}`, acc(voteLogits(nb, y, C, w, o.knn.temperature)), `neighbours=${n}`]);
    }
    if (has('linear-probe')) {
      const r = linearProbe(c.query, s, y, C, o.probe);
      out.push(['linear-probe', acc(r.logits), `lambda=${r.lambda}`]);
    }
  });
  return out;
}

/** The tidy rows of one cache: zero-shot once (k = 0), then every k × episode × method. */
export function runEpisodes(c: EmbeddingCache, o: FewShotOptions): EpisodeRow[] {
  const rows: EpisodeRow[] = [];
  const row = (method: FewShotMethod, k: number, e: number, accuracy: number, chosen: string) =>
    rows.push({ task: c.task, method, k, episode: e, accuracy, chosen });
  if (o.methods.includes('zero-shot'))
    row('zero-shot', 0, 0, accuracyOfScores(c.queryText, c.queryLabels), '');
  for (const k of o.shots)
    for (let e = 0; e < o.episodes; e++) {
      const idx = drawEpisode(c, k, episodeRng(o.seed, c.task, k, e));
      for (const [m, a, chosen] of episode(c, idx, k, o)) row(m, k, e, a, chosen);
    }
  return rows;
}

/** The suite on every task, one embedding cache per task (freed after its episodes). */
export function fewShotSuite(
  model: Model,
  tok: Tokenizer,
  tasks: Task[],
  o: FewShotOptions = FEWSHOT_DEFAULTS,
): EpisodeRow[] {
  return tasks.flatMap((task) => {
    const cache = embeddingCache(model, tok, task);
    try {
      return runEpisodes(cache, o);
    } finally {
      disposeCache(cache);
    }
  });
}

/** One line of the summary: mean ± 95% CI over the episodes. */
export interface FewShotRow {
  task: string;
  method: FewShotMethod;
  k: number;
  mean: number;
  std: number;
  n: number;
  ci95: number;
}

/** Zero-shot draws no support, so it has one value and no spread: std and CI are 0. */
function stats(method: FewShotMethod, xs: number[]) {
  const s = meanCI(xs);
  return method === 'zero-shot' ? { ...s, std: 0, ci95: 0 } : s;
}

function groupBy(rows: EpisodeRow[], key: (r: EpisodeRow) => string): Map<string, EpisodeRow[]> {
  const g = new Map<string, EpisodeRow[]>();
  for (const r of rows) g.set(key(r), [...(g.get(key(r)) ?? []), r]);
  return g;
}

/** Per task × method × k: mean, std, n and 95% CI half-width over the episodes. */
export function summariseFewShot(rows: EpisodeRow[]): FewShotRow[] {
  return [...groupBy(rows, (r) => `${r.task}\u0000${r.method}\u0000${r.k}`).values()].map((g) => {
    const { task, method, k } = g[0];
    return {
      task,
      method,
      k,
      ...stats(
        method,
        g.map((r) => r.accuracy),
      ),
    };
  });
}

/**
 * The suite average per method × k (task 'suite'): each episode's accuracy is
 * averaged over the tasks, then mean ± 95% CI over the episodes (draws are
 * independent across episodes, so these are i.i.d. samples of the suite mean).
 */
export function suiteAverage(rows: EpisodeRow[]): FewShotRow[] {
  return [...groupBy(rows, (r) => `${r.method}\u0000${r.k}`).values()].map((g) => {
    const byEpisode = groupBy(g, (r) => String(r.episode));
    const means = [...byEpisode.values()].map(
      (es) => es.reduce((a, r) => a + r.accuracy, 0) / es.length,
    );
    const { method, k } = g[0];
    return { task: 'suite', method, k, ...stats(method, means) };
  });
}
