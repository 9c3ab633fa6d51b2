/**
 * The caption language: synonyms for every attribute value, phrase frames and the
 * prompt templates of the task suite. Everything the world can ever say is listed
 * here, so `vocabularyWords()` is the tokenizer's complete vocabulary and the tests
 * can prove there is no UNK anywhere. Synonyms make the text side non-trivial: the
 * text tower has to learn that "crimson" and "red" mean the same thing.
 */
import { COLOURS, COUNTS, GARMENTS, POSITIONS, SHAPES, SIZES, TEXTURES } from './scene';

/** Per shape, its words; the first is the canonical class name. */
export const SHAPE_WORDS: string[][] = [
  ['circle', 'disk'],
  ['square', 'block'],
  ['triangle'],
  ['cross', 'plus'],
  ['ring', 'hoop'],
  ['star'],
  ['heart'],
  ['diamond', 'rhombus'],
];
export const GARMENT_WORDS: string[][] = [
  ['tshirt', 'tee'],
  ['trousers', 'pants'],
  ['pullover', 'sweater'],
  ['dress'],
  ['coat', 'jacket'],
  ['sandal'],
  ['shirt'],
  ['sneaker', 'trainer'],
  ['bag', 'handbag'],
  ['boot'],
];
export const COLOUR_WORDS: string[][] = [
  ['red', 'crimson'],
  ['orange'],
  ['yellow', 'golden'],
  ['green'],
  ['cyan', 'turquoise'],
  ['blue', 'azure'],
  ['purple', 'violet'],
  ['pink', 'magenta'],
];
export const SIZE_WORDS: string[][] = [
  ['small', 'little', 'tiny'],
  ['large', 'big', 'huge'],
];
export const TEXTURE_WORDS: string[][] = [
  ['solid', 'plain', 'filled'],
  ['striped', 'stripy'],
  ['checkered', 'checked'],
];
/** Texture as a trailing phrase instead of an adjective (solid has none). */
export const TEXTURE_PHRASES: string[][] = [[], ['with stripes'], ['with checks']];
export const COUNT_WORDS: string[][] = [['one'], ['two'], ['three']];
/** Grid cell -> phrases naming it (used after a preposition). */
export const POSITION_WORDS: string[][] = [
  ['top left', 'upper left'],
  ['top', 'top center'],
  ['top right', 'upper right'],
  ['left', 'middle left'],
  ['center', 'middle'],
  ['right', 'middle right'],
  ['bottom left', 'lower left'],
  ['bottom', 'bottom center'],
  ['bottom right', 'lower right'],
];
export const PREPOSITIONS = ['in the', 'at the', 'on the'];
/** Nouns used when the caption does not name the shape or garment. */
export const GENERIC_SHAPE_NOUNS = ['shape', 'object', 'thing'];
export const GENERIC_GARMENT_NOUNS = ['garment', 'object', 'item'];
/** Plurals that are not noun + s. Garments only ever occur once. */
export const PLURALS: Record<string, string> = {
  cross: 'crosses',
  plus: 'pluses',
  rhombus: 'rhombi',
};
/** Plural determiners when the count is not mentioned ('' = bare plural). */
export const PLURAL_DETERMINERS = ['', 'some', 'several'];
/** Whole-caption frames; `{}` is the noun phrase. 'there is' becomes 'there are'. */
export const FRAMES = [
  '{}',
  'a photo of {}',
  'an image of {}',
  'a picture of {}',
  'there is {}',
  'a drawing of {}',
  'a scene with {}',
];
export const EXTRA_WORDS = ['a', 'an', 'that', 'is', 'are', 'and', 'there'];

/** Prompt templates per task family, written in the caption language. */
export const PROMPTS: Record<string, string[]> = {
  object: ['a photo of a {}', 'an image of a {}', 'a picture of a {}', 'there is one {}', '{}'],
  colour: ['a photo of a {} object', 'a {} thing', 'an image of a {} shape', 'there is a {} item'],
  size: ['a photo of a {} object', 'a {} thing', 'an image of a {} shape', 'there is a {} item'],
  texture: ['a photo of a {} shape', 'a {} thing', 'an image of a {} object', 'a {} shape'],
  count: ['a photo of {} objects', '{} shapes', 'there are {} things', 'an image of {} objects'],
  position: [
    'a photo of an object in the {}',
    'a shape at the {}',
    'there is a thing on the {}',
    'an image of an object in the {}',
  ],
  garmentColour: ['a photo of a {} garment', 'a {} item', 'an image of a {} object'],
};

/** 'an' before a vowel sound (good enough for this closed vocabulary). */
export function article(nextWord: string): string {
  return /^[aeiou]/.test(nextWord) ? 'an' : 'a';
}

export function plural(noun: string): string {
  return PLURALS[noun] ?? noun + 's';
}

function flat(tables: string[][][]): string[] {
  const out: string[] = [];
  for (const t of tables) for (const row of t) for (const p of row) out.push(...p.split(' '));
  return out;
}

/** Every word a caption, class name or prompt can contain. */
export function vocabularyWords(): string[] {
  const nouns = [...flat([SHAPE_WORDS]), ...GENERIC_SHAPE_NOUNS];
  const words = [
    ...flat([SHAPE_WORDS, GARMENT_WORDS, COLOUR_WORDS, SIZE_WORDS, TEXTURE_WORDS]),
    ...flat([TEXTURE_PHRASES, COUNT_WORDS, POSITION_WORDS]),
    ...nouns.map(plural),
    ...GENERIC_GARMENT_NOUNS,
    ...[PREPOSITIONS, PLURAL_DETERMINERS, FRAMES, EXTRA_WORDS].flat().join(' ').split(' '),
    ...Object.values(PROMPTS).flat().join(' ').split(' '),
    ...[SHAPES, COLOURS, SIZES, TEXTURES, COUNTS, POSITIONS, GARMENTS].flat().join(' ').split(' '),
  ];
  return words.map((w) => w.replace('{}', '')).filter((w) => w.length > 0);
}
