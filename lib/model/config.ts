/**
 * The towers' configuration as data. The schemas below are the single source
 * of the tower fields: their TypeScript types are derived from them, and
 * config/schema.ts composes them into the experiment config.
 */
import * as v from 'valibot';
import { int, num, oneOf } from '../schema';

/** How the image tower pools its tokens (vit.ts holds one pooler per name). */
export const IMAGE_POOLS = ['cls', 'mean', 'map'] as const;

const transformer = {
  width: int({ min: 1 }), // transformer width D
  depth: int({ min: 1 }), // number of pre-LN blocks
  heads: int({ min: 1 }), // attention heads; must divide width
  mlpRatio: num({ above: 0 }), // hidden width of the MLP = mlpRatio · D
};

export const ImageTowerSchema = v.strictObject({
  imageSize: int({ min: 1 }), // 32: the world's images
  patch: int({ min: 1 }), // patch side in pixels; tokens = (imageSize / patch)²
  ...transformer,
  pool: oneOf(IMAGE_POOLS), // cls token, mean of patch tokens, or attention pooling (MAP)
  registers: int({ min: 0 }), // extra learned tokens that take part in attention, never pooled
});

/** Text sizes a user chooses; vocabulary and context length come from the tokenizer. */
export const TextTowerSchema = v.strictObject(transformer);

export type ImagePool = (typeof IMAGE_POOLS)[number];

export type ImageTowerConfig = v.InferOutput<typeof ImageTowerSchema> & {
  /** K learned tokens the objective reads after the last block (Llip); set by the objective */
  mixtureTokens?: number;
};

export type TextTowerConfig = v.InferOutput<typeof TextTowerSchema> & {
  vocabSize: number; // set from the tokenizer
  contextLength: number; // set from the tokenizer
};

/** The towers of one model, resolved (tokenizer sizes and mixture tokens filled in). */
export interface ModelConfig {
  image: ImageTowerConfig;
  text: TextTowerConfig;
  embedDim: number; // shared embedding size E
}

/** Throws with a message naming the field when a resolved model config is inconsistent. */
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
  need((im.mixtureTokens ?? 0) >= 0, 'image.mixtureTokens must be >= 0');
  need(tx.vocabSize >= 4 && tx.contextLength >= 2, 'text.vocabSize/contextLength too small');
  need(cfg.embedDim >= 1, 'embedDim must be >= 1');
}
