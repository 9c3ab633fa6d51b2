/**
 * Everything the page loads, once, at start: the manifest, the four models
 * (the lab's createModel + the weights' safetensors bytes), the tokenizer (the
 * world's own, rebuilt from its vocabulary), and the pixels. After this the
 * page makes no request at all.
 */
import type * as tf from '@tensorflow/tfjs';
import { vocabularyWords } from '../../lib/data/language';
import { Tokenizer } from '../../lib/data/tokenizer';
import { PIXELS } from '../../lib/data/types';
import { embedImages, imageSide } from '../../lib/eval/evaluate';
import type { TowerOutputs } from '../../lib/model/index';
import { assignWeights, decodeWeights } from '../../lib/model/safetensors-codec';
import { createModel, type Model } from '../../lib/objectives/model';
import {
  bytesToPixels,
  type ExploreModelKey,
  type Manifest,
  type ManifestModel,
  type ManifestTask,
} from './manifest';

/** A model with its image side of the gallery computed once. */
export interface LoadedModel {
  key: ExploreModelKey;
  entry: ManifestModel;
  model: Model;
  /** the tower outputs its objective reads, for every gallery image */
  gallery: TowerOutputs;
  /** unit image vectors of the gallery [N, E] (prototypes and neighbours use them) */
  vectors: tf.Tensor2D;
}

export interface Lab {
  manifest: Manifest;
  tokenizer: Tokenizer;
  models: LoadedModel[];
  /** gallery pixels [N·32·32·3] in [0, 1], and the bytes for thumbnails */
  galleryPixels: Float32Array;
  galleryBytes: Uint8Array;
  supportPixels: Float32Array;
  supportBytes: Uint8Array;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** Images [first, first + count) of a pixel array. */
export function imageRange(pixels: Float32Array, first: number, count: number): Float32Array {
  return pixels.subarray(first * PIXELS, (first + count) * PIXELS);
}

/** The support pixels of a task. */
export function taskPixels(lab: Lab, task: ManifestTask): Float32Array {
  return imageRange(lab.supportPixels, task.first, task.count);
}

async function loadModel(
  entry: ManifestModel,
  base: string,
  galleryPixels: Float32Array,
): Promise<LoadedModel> {
  const url = `${base}/${entry.file}`;
  const model = createModel(entry.model, entry.objective, entry.endId, entry.seed);
  assignWeights(model.params, decodeWeights(await fetchBytes(url), url), url);
  return {
    key: entry.key,
    entry,
    model,
    gallery: imageSide(model, galleryPixels),
    vectors: embedImages(model, galleryPixels),
  };
}

/** Loads the manifest and everything it names from `base` (the site's data/ folder). */
export async function loadLab(base: string, progress: (msg: string) => void): Promise<Lab> {
  const r = await fetch(`${base}/manifest.json`);
  if (!r.ok)
    throw new Error(
      `${base}/manifest.json: HTTP ${r.status} (build the site with npm run explore)`,
    );
  const manifest = (await r.json()) as Manifest;
  const tokenizer = new Tokenizer(vocabularyWords(), manifest.world.contextLength);
  if (tokenizer.vocabSize !== manifest.world.vocabSize)
    throw new Error(
      `the page's vocabulary has ${tokenizer.vocabSize} words, the models' ${manifest.world.vocabSize}: rebuild the assets (npm run explore)`,
    );
  const [galleryBytes, supportBytes] = await Promise.all([
    fetchBytes(`${base}/${manifest.gallery.file}`),
    fetchBytes(`${base}/${manifest.support.file}`),
  ]);
  const galleryPixels = bytesToPixels(galleryBytes);
  const models: LoadedModel[] = [];
  for (const entry of manifest.models) {
    progress(`Loading ${entry.label} (${(entry.bytes / 1e6).toFixed(1)} MB)…`);
    models.push(await loadModel(entry, base, galleryPixels));
  }
  return {
    manifest,
    tokenizer,
    models,
    galleryPixels,
    galleryBytes,
    supportPixels: bytesToPixels(supportBytes),
    supportBytes,
  };
}

export function modelByKey(lab: Lab, key: string): LoadedModel {
  const m = lab.models.find((x) => x.key === key);
  if (!m) throw new Error(`no model '${key}' in the assets`);
  return m;
}

export function taskByName(lab: Lab, name: string): ManifestTask {
  const t = lab.manifest.tasks.find((x) => x.name === name);
  if (!t) throw new Error(`no task '${name}' in the assets`);
  return t;
}
