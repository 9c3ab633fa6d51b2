/**
 * Model configuration as plain data (big_vision / nanoGPT style): a typed object,
 * named presets, and `makeModelConfig(preset, overrides)` to derive variants.
 */

export type ImagePool = 'cls' | 'mean' | 'map';

export interface ImageTowerConfig {
  imageSize: number; // 32: the world's images
  patch: number; // patch side in pixels; tokens = (imageSize / patch)²
  width: number; // transformer width D
  depth: number; // number of pre-LN blocks
  heads: number; // attention heads; must divide width
  mlpRatio: number; // hidden width of the MLP = mlpRatio · D
  pool: ImagePool; // cls token, mean of patch tokens, or multihead attention pooling (MAP)
  registers: number; // extra learned tokens that take part in attention but are not pooled
}

export interface TextTowerConfig {
  vocabSize: number; // set from the tokenizer
  contextLength: number; // set from the tokenizer
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
}

export interface ModelConfig {
  image: ImageTowerConfig;
  text: TextTowerConfig;
  embedDim: number; // shared embedding size E
}

/** Throws with a message naming the field when a model config is inconsistent. */
export function validateModelConfig(cfg: ModelConfig): void {
  const { image: im, text: tx } = cfg;
  const need = (ok: boolean, msg: string) => {
    if (!ok) throw new Error(`model config: ${msg}`);
  };
  need(im.imageSize % im.patch === 0, `image.patch (${im.patch}) must divide image.imageSize`);
  need(im.width % im.heads === 0, `image.heads (${im.heads}) must divide image.width`);
  need(tx.width % tx.heads === 0, `text.heads (${tx.heads}) must divide text.width`);
  need(im.depth >= 1 && tx.depth >= 1, 'image.depth and text.depth must be >= 1');
  need(
    im.registers >= 0 && Number.isInteger(im.registers),
    'image.registers must be an integer >= 0',
  );
  need(tx.vocabSize >= 4 && tx.contextLength >= 2, 'text.vocabSize/contextLength too small');
  need(cfg.embedDim >= 1, 'embedDim must be >= 1');
}

/** Number of tokens the image tower attends over: extra (cls + registers) then patches. */
export function imageTokenLayout(im: ImageTowerConfig): { extra: number; patches: number } {
  const side = im.imageSize / im.patch;
  return { extra: (im.pool === 'cls' ? 1 : 0) + im.registers, patches: side * side };
}
