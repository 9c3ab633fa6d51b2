/**
 * What each view computes, as thin calls into the lab's own code (lib/): the
 * objective's similarity and prompt ensembling (eval/evaluate.ts), prototypes
 * (evaluate.ts) and neighbours (eval/neighbours.ts), LIxP's batch context
 * (objectives/lixp.ts), Llip's mixing weights (eval/mixing.ts) and the spectra
 * (eval/spectrum.ts). Results come back as plain arrays for the DOM.
 */
import * as tf from '@tensorflow/tfjs';
import { normalizeWords } from '../../lib/data/tokenizer';
import {
  classTexts,
  embedImages,
  prototypes,
  sampleShots,
  scores,
  textSide,
} from '../../lib/eval/evaluate';
import { mixingWeights } from '../../lib/eval/mixing';
import { nearestNeighbours } from '../../lib/eval/neighbours';
import { covarianceSpectrum, effectiveRank, spectrumFeatures } from '../../lib/eval/spectrum';
import type { TowerOutputs } from '../../lib/model/index';
import { lixpContext, lixpScalars } from '../../lib/objectives/lixp';
import { Rng } from '../../lib/rng';
import { imageRange, type Lab, type LoadedModel, taskPixels } from './data';
import type { ManifestTask } from './manifest';

/** Words of `text` outside the world's vocabulary, and words past the context length. */
export function captionProblems(lab: Lab, text: string): { unknown: string[]; dropped: string[] } {
  const words = normalizeWords(text);
  const tok = lab.tokenizer;
  return {
    unknown: words.filter((w) => tok.wordId(w) === tok.UNK),
    dropped: words.slice(tok.contextLength - 1),
  };
}

/** Row i of every tower output (a batch of one). */
function sliceSide(side: TowerOutputs, i: number): TowerOutputs {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, t] of Object.entries(side) as [string, tf.Tensor][])
    out[k] = tf.slice(t, [i, ...t.shape.slice(1).map(() => 0)], [1, ...t.shape.slice(1)]);
  return out as TowerOutputs;
}

const read = (t: tf.Tensor): number[] => Array.from(t.dataSync());

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The scale and bias the objective scores a pair with at test time (LIxP: its base term). */
function scaleBias(lm: LoadedModel): { t: number; b: number | null } {
  const p = lm.model.params;
  const logT = p.logScale ?? p.logTau1;
  const bias = p.bias ?? p.bias1;
  return { t: Math.exp(logT.dataSync()[0]), b: bias ? bias.dataSync()[0] : null };
}

/**
 * softmax(t·s) over classes with the model's own scale t: how sure the model is
 * among these classes (the argmax is the decision either way).
 */
export function classShares(lm: LoadedModel, s: number[]): number[] {
  const { t } = scaleBias(lm);
  const m = Math.max(...s);
  const e = s.map((x) => Math.exp(t * (x - m)));
  const z = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / z);
}

export interface CaptionResult {
  /** the objective's score of each gallery image against the caption */
  scores: number[];
  /** sigmoid models: σ(t·s + b) per image, alone; CLIP: softmax over the gallery */
  probabilities: number[];
  probability: 'sigmoid' | 'softmax';
  t: number;
  b: number | null;
}

/** Scores of every gallery image for one caption, as the objective computes them. */
export function captionScores(lab: Lab, lm: LoadedModel, caption: string): CaptionResult {
  const txt = textSide(lm.model, lab.tokenizer.encode(caption));
  const s = scores(lm.model, lm.gallery, txt); // [N, 1]
  const values = read(s);
  tf.dispose([s, ...Object.values(txt)]);
  const { t, b } = scaleBias(lm);
  if (b !== null)
    return {
      scores: values,
      probabilities: values.map((x) => sigmoid(t * x + b)),
      probability: 'sigmoid',
      t,
      b,
    };
  const probabilities = classShares(lm, values);
  return { scores: values, probabilities, probability: 'softmax', t, b };
}

const textCache = new Map<string, TowerOutputs>();

/** The class texts of a task for a model (prompt ensembling), computed once. */
function taskTexts(lab: Lab, lm: LoadedModel, task: ManifestTask): TowerOutputs {
  const key = `${lm.key}/${task.name}`;
  let t = textCache.get(key);
  if (!t) {
    t = classTexts(lm.model, lab.tokenizer, task.classNames, task.templates);
    textCache.set(key, t);
  }
  return t;
}

/** Zero-shot scores [C] of gallery image i for a task's classes. */
export function zeroShot(lab: Lab, lm: LoadedModel, task: ManifestTask, i: number): number[] {
  const texts = taskTexts(lab, lm, task);
  const img = sliceSide(lm.gallery, i);
  const s = scores(lm.model, img, texts); // [1, C]
  const out = read(s);
  tf.dispose([s, ...Object.values(img)]);
  return out;
}

/** The k gallery images nearest to image i (itself excluded), by cosine of the image vectors. */
export function neighbours(lm: LoadedModel, i: number, k: number) {
  const aff = tf.tidy(
    () => tf.matMul(tf.slice(lm.vectors, [i, 0], [1, -1]), lm.vectors, false, true) as tf.Tensor2D,
  );
  const nn = nearestNeighbours(aff, k + 1);
  aff.dispose();
  const out: { index: number; sim: number }[] = [];
  for (let r = 0; r < nn.k && out.length < k; r++)
    if (nn.index[r] !== i) out.push({ index: nn.index[r], sim: nn.sim[r] });
  return out;
}

const supportCache = new Map<string, tf.Tensor2D>();

export interface FewShotResult {
  /** cosine of the image to each class prototype */
  scores: number[];
  /** the support images (task-local indices) of each class's prototype */
  shots: number[][];
}

/** How a k-shot prototype classifier (eval/evaluate.ts) decides on gallery image i. */
export function fewShot(
  lab: Lab,
  lm: LoadedModel,
  task: ManifestTask,
  i: number,
  k: number,
  seed: number,
): FewShotResult {
  const key = `${lm.key}/${task.name}`;
  let support = supportCache.get(key);
  if (!support) {
    support = embedImages(lm.model, taskPixels(lab, task));
    supportCache.set(key, support);
  }
  const shots = sampleShots(Int32Array.from(task.labels), task.classNames.length, k, new Rng(seed));
  const s = tf.tidy(() => {
    const protos = prototypes(support, shots); // [C, E]
    return tf.matMul(tf.slice(lm.vectors, [i, 0], [1, -1]), protos, false, true);
  });
  const out = read(s);
  s.dispose();
  return { scores: out, shots };
}

export interface AttentionResult {
  /** A [B, M]: row i is where image i looks (M = B, or 2B with texts in the memory) */
  attention: number[][];
  tauCtx: number;
  /** mean row entropy, nats; log(B − 1) is uniform over the others */
  entropy: number;
  /** mean weight on images of the same identity, and what uniform attention would give */
  sameIdentity: number;
  chance: number;
}

/** LIxP's context attention over a batch of gallery images (the training-time cross-attention). */
export function lixpAttention(lab: Lab, lm: LoadedModel, batch: number[]): AttentionResult {
  const cfg = lm.entry.objective;
  if (cfg.name !== 'lixp') throw new Error(`context attention needs LIxP, got ${cfg.name}`);
  const captions = batch.map((i) => lab.manifest.gallery.items[i].caption);
  const txt =
    cfg.memory === 'images+texts' ? textSide(lm.model, lab.tokenizer.encodeBatch(captions)) : null;
  const { logTauCtx } = lixpScalars(lm.model.params, cfg); // tied or frozen as the config says
  const a = tf.tidy(() => {
    const imgRaw = tf.gather(lm.gallery.image!, batch) as tf.Tensor2D;
    const extra = { txtRaw: txt?.text, heads: lm.model.params };
    return lixpContext(imgRaw, logTauCtx, cfg, extra).attention;
  });
  const attention = a.arraySync() as number[][];
  a.dispose();
  if (txt) tf.dispose(Object.values(txt));
  const ids = batch.map((i) => lab.manifest.gallery.items[i].identity);
  const B = batch.length;
  let entropy = 0;
  let same = 0;
  let chance = 0;
  attention.forEach((row, i) => {
    for (const p of row) if (p > 0) entropy -= p * Math.log(p);
    let n = 0;
    for (let j = 0; j < B; j++)
      if (j !== i && ids[j] === ids[i]) {
        same += row[j];
        n++;
      }
    chance += n / (B - 1);
  });
  return {
    attention,
    tauCtx: Math.exp(logTauCtx.dataSync()[0]),
    entropy: entropy / B,
    sameIdentity: same / B,
    chance: chance / B,
  };
}

export interface MixingResult {
  /** Φ per caption: [caption][head][token] */
  phi: number[][][];
  /** the objective's score of the image against each caption */
  scores: number[];
}

/** Llip's mixing weights for gallery image i against each caption, and the pair scores. */
export function llipMixing(lab: Lab, lm: LoadedModel, i: number, captions: string[]): MixingResult {
  const tokens = lab.tokenizer.encodeBatch(captions);
  const w = mixingWeights(lm.model, imageRange(lab.galleryPixels, i, 1), tokens); // [M, Bt, 1, T]
  const arr = w.arraySync() as number[][][][];
  w.dispose();
  const phi = captions.map((_, c) => arr.map((head) => head[Math.min(c, head.length - 1)][0]));
  const txt = textSide(lm.model, tokens);
  const img = sliceSide(lm.gallery, i);
  const s = scores(lm.model, img, txt); // [1, Bt]
  const out = read(s);
  tf.dispose([s, ...Object.values(txt), ...Object.values(img)]);
  return { phi, scores: out };
}

export interface SpectrumResult {
  values: number[];
  effectiveRank: number;
  /** what the spectrum is of: rows × dims */
  rows: number;
  dims: number;
}

/** The covariance spectrum of the model's image features over the gallery. */
export function spectrum(lab: Lab, lm: LoadedModel): SpectrumResult {
  const f = spectrumFeatures(lm.model, lab.galleryPixels);
  const [rows, dims] = f.shape;
  const s = covarianceSpectrum(f);
  f.dispose();
  return { values: Array.from(s), effectiveRank: effectiveRank(s), rows, dims };
}
