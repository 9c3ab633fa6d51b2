/**
 * The non-training parts a notebook waits on: embedding an image cache,
 * zero-shot and few-shot (prototype) evaluation over it, the whole few-shot
 * suite over the same cache, and static figure export.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { World } from '../lib/data/world';
import {
  accuracyOfScores,
  classTexts,
  embedImages,
  fewShotAccuracy,
  imageSide,
  scores,
} from '../lib/eval/evaluate';
import {
  type EmbeddingCache,
  FEWSHOT_DEFAULTS,
  FEWSHOT_METHODS,
  runEpisodes,
} from '../lib/eval/fewshot-suite';
import type { Model } from '../lib/objectives/model';
import { closeExporter, lineFigure, savePng } from '../lib/plot/plot';
import { Rng } from '../lib/rng';

export interface EvalTimes {
  images: number;
  embedMs: number; // embedding the cache with the model (once per evaluation)
  zeroShotMs: number; // class text embeddings + nearest class over the cache
  fewShotMs: number; // k-shot prototypes for every k and episode, over the cache
  evalMs: number; // zero-shot + few-shot over the cached embeddings
  /** the training-free suite (zero-shot, prototype, Tip-Adapter default + CV, 3 kNN votes) */
  suiteMs: number;
  probeMs: number; // the linear probe (trained: CV over λ, then the final fit) on the same draws
  suiteShots: number[];
  suiteEpisodes: number;
}

const SHOTS = [1, 2, 4, 8, 16];
const EPISODES = 5;

/** The cache's halves as the few-shot suite's embedding cache (zero-shot cosines included). */
function suiteCache(emb: tf.Tensor2D, zs: tf.Tensor2D, labels: Int32Array, C: number) {
  const half = labels.length / 2;
  const [support, query] = tf.split(emb, 2) as tf.Tensor2D[];
  const [supportText, queryText] = tf.split(zs, 2) as tf.Tensor2D[];
  const [supportLabels, queryLabels] = [labels.subarray(0, half), labels.subarray(half)];
  const task = 'bench';
  const cache = {
    task,
    numClasses: C,
    query,
    queryLabels,
    queryText,
    support,
    supportLabels,
    supportText,
  };
  return cache satisfies EmbeddingCache;
}

/** The whole suite over the cache: training-free methods, then the linear probe, timed apart. */
function timeSuite(cache: EmbeddingCache, episodes: number) {
  const perClass = cache.supportLabels.length / cache.numClasses;
  const shots = [1, 2, 4, 8, 16, 32, 64].filter((k) => k <= perClass);
  const o = { ...FEWSHOT_DEFAULTS, shots, episodes };
  const free = FEWSHOT_METHODS.filter((m) => m !== 'linear-probe');
  let t = performance.now();
  runEpisodes(cache, { ...o, methods: free });
  const suiteMs = performance.now() - t;
  t = performance.now();
  runEpisodes(cache, { ...o, methods: ['linear-probe'] });
  return { suiteMs, probeMs: performance.now() - t, suiteShots: shots, suiteEpisodes: episodes };
}

/** Times evaluation of one model over an `n`-image cache (half support, half query). */
export function timeEvaluation(model: Model, world: World, n: number, episodes = 5): EvalTimes {
  const classes = world.attributes.colours;
  const templates = ['a {} shape', 'a photo of something {}', 'a {} object'];
  const batch = world.sampleBatch(new Rng(7), n);
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes.length);
  let t = performance.now();
  const side = imageSide(model, batch.images); // what zero-shot reads
  const emb = embedImages(model, batch.images); // what prototypes read
  emb.dataSync();
  const embedMs = performance.now() - t;
  const half = n / 2;
  const [support, query] = [tf.slice(emb, 0, half), tf.slice(emb, half, n - half)];
  const set = (l: Int32Array) => ({ images: new Float32Array(0), labels: l, size: l.length });
  const [sLab, qLab] = [set(labels.subarray(0, half)), set(labels.subarray(half))];
  t = performance.now();
  const w = classTexts(model, world.tokenizer, classes, templates);
  const s = scores(model, side, w);
  accuracyOfScores(s, labels);
  const zeroShotMs = performance.now() - t;
  t = performance.now();
  for (const k of SHOTS)
    fewShotAccuracy(support, sLab, query, qLab, classes.length, k, EPISODES, k);
  const fewShotMs = performance.now() - t;
  const cache = suiteCache(emb, s, labels, classes.length);
  const suite = timeSuite(cache, episodes);
  tf.dispose([cache.support, cache.query, cache.supportText, cache.queryText]);
  tf.dispose([emb, support, query, s, ...Object.values(w), ...Object.values(side)]);
  return { images: n, embedMs, zeroShotMs, fewShotMs, evalMs: zeroShotMs + fewShotMs, ...suite };
}

export interface FigureTimes {
  firstMs: number; // includes starting Chromium and loading plotly
  warmMs: number; // a second figure with the exporter running
}

/** Times `savePng` of a 4-series, 1500-point line figure, cold and warm. */
export async function timeFigureExport(): Promise<FigureTimes> {
  const xs = Array.from({ length: 1500 }, (_, i) => i + 1);
  const series = ['siglip', 'clip', 'lixp', 'llip'].map((name, j) => ({
    name,
    x: xs,
    y: xs.map((x) => Math.exp(-x / 400) * (1 + 0.1 * j) + 0.01 * Math.sin(x)),
  }));
  const fig = lineFigure({ title: 'loss', xTitle: 'step', yTitle: 'loss', series });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-bench-fig-'));
  try {
    let t = performance.now();
    await savePng(fig, path.join(dir, 'a.png'));
    const firstMs = performance.now() - t;
    t = performance.now();
    await savePng(fig, path.join(dir, 'b.png'));
    return { firstMs, warmMs: performance.now() - t };
  } finally {
    await closeExporter();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
