/**
 * Shared shapes of the data layer. Images are float32 RGB in [0, 1], row-major
 * [N, 32, 32, 3] (HWC), flattened into one Float32Array. Token ids are int32 [N, L]
 * with L = the tokenizer's context length, padded with PAD after END.
 */

export const IMAGE_SIZE = 32;
export const CHANNELS = 3;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE * CHANNELS;

/** A batch of image-caption pairs. */
export interface Batch {
  /** [B, 32, 32, 3] in [0, 1] */
  images: Float32Array;
  /** [B, L] token ids */
  tokens: Int32Array;
  /** the B captions as text (for display) */
  captions: string[];
  size: number;
  /**
   * [B] each image's object identity: its shape (0..7) or 8 + its garment label;
   * training never reads it, diagnostics do (LIxP's same-class attention)
   */
  identity?: Int32Array;
}

/** A labelled image set (for zero-shot / few-shot evaluation). */
export interface LabelledImages {
  /** [N, 32, 32, 3] in [0, 1] */
  images: Float32Array;
  /** [N] class index in [0, classNames.length) */
  labels: Int32Array;
  size: number;
}

/** One downstream classification task of the suite. */
export interface Task {
  name: string;
  /** one line saying what the task tests */
  description: string;
  classNames: string[];
  /** prompt templates with `{}` where the class name goes; at least 3 */
  templates: string[];
  /** pool to draw k-shot support examples from (>= 16 per class) */
  support: LabelledImages;
  /** evaluation images */
  query: LabelledImages;
  /** accuracy of a uniform guess (1 / number of classes) */
  chance: number;
}
