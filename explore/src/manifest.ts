/**
 * What `npm run explore` ships beside the page (scripts/explore-assets.ts writes
 * it, the page reads it): the four models' weights as the lab's safetensors
 * files, a gallery of the world's test images and the support pools of a few
 * tasks as 8-bit pixels, and this manifest describing them. Types only, plus
 * the pixel codec both sides use, so Node and the browser see the same inputs.
 */
import type { ModelConfig } from '../../lib/model/config';
import type { ObjectiveConfig } from '../../lib/objectives/index';

export const MANIFEST_VERSION = 1;

/** The models the explorer shows, in display order. */
export const EXPLORE_MODELS = ['siglip', 'clip', 'lixp', 'llip'] as const;
export type ExploreModelKey = (typeof EXPLORE_MODELS)[number];

export const MODEL_LABELS: Record<ExploreModelKey, string> = {
  siglip: 'SigLIP',
  clip: 'CLIP',
  lixp: 'LIxP',
  llip: 'Llip',
};

/** The tasks whose support pools the few-shot view uses (names from lib/data/tasks.ts). */
export const EXPLORE_TASKS = [
  'shape',
  'colour',
  'size',
  'texture',
  'count',
  'position',
  'garment',
] as const;

export interface ManifestModel {
  key: ExploreModelKey;
  label: string;
  /** the run's weights.safetensors, copied: data/<key>.safetensors */
  file: string;
  bytes: number;
  /** resolved towers (tokenizer sizes filled in) and the objective section: createModel's inputs */
  model: ModelConfig;
  objective: ObjectiveConfig;
  endId: number;
  preset: string;
  steps: number;
  seed: number;
  /** seconds of training, when this export trained it (null: reused) */
  trainSeconds: number | null;
  finalLoss: number;
}

/** One gallery image: a test-split scene of the world. */
export interface GalleryItem {
  caption: string;
  /** shape 0…7 or 8 + garment label (lib/data/types.ts Batch.identity) */
  identity: number;
  /** attribute names for display: kind, shape or garment, colour, size, texture, count, position */
  attributes: Record<string, string>;
  /** class index per task in EXPLORE_TASKS, null where the task does not apply */
  labels: Record<string, number | null>;
}

export interface ManifestTask {
  name: string;
  description: string;
  classNames: string[];
  templates: string[];
  /** images [first, first + count) of the support file, 16 per class */
  first: number;
  count: number;
  labels: number[];
}

export interface Manifest {
  version: number;
  /** hash of everything that decides the assets: a rerun with the same key is skipped */
  key: string;
  createdAt: string;
  commit: string;
  world: { seed: number; contextLength: number; vocabSize: number };
  imageSize: number;
  gallery: { file: string; count: number; items: GalleryItem[] };
  support: { file: string; count: number; perClass: number };
  tasks: ManifestTask[];
  models: ManifestModel[];
}

/** Float pixels in [0, 1] → bytes (round to nearest): what the page receives. */
export function pixelsToBytes(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, x[i])) * 255);
  return out;
}

/** Bytes → float pixels in [0, 1]: the model input on both sides. */
export function bytesToPixels(b: Uint8Array): Float32Array {
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b[i] / 255;
  return out;
}
