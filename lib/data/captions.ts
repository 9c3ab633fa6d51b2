/**
 * Random captions for a scene. Each applicable attribute is mentioned independently
 * with the same probability (so no attribute dominates the text side), the noun is
 * named more often than not, adjectives come in random order, before the noun or in
 * a trailing "that is ..." clause, and synonyms and frames vary. The same scene gets
 * a fresh caption every time it is drawn, so the text is never a fixed label.
 */
import type { Rng } from '../rng';
import {
  article,
  COLOUR_WORDS,
  COUNT_WORDS,
  FRAMES,
  GARMENT_WORDS,
  GENERIC_GARMENT_NOUNS,
  GENERIC_SHAPE_NOUNS,
  PLURAL_DETERMINERS,
  POSITION_WORDS,
  PREPOSITIONS,
  plural,
  SHAPE_WORDS,
  SIZE_WORDS,
  TEXTURE_PHRASES,
  TEXTURE_WORDS,
} from './language';
import type { Scene } from './scene';

export interface CaptionOptions {
  /** probability of mentioning each applicable attribute (size, colour, texture, count, position) */
  mentionProb: number;
  /** probability of naming the shape/garment instead of a generic noun */
  nounProb: number;
  /** probability of putting the adjectives in a trailing "that is ..." clause */
  clauseProb: number;
}

/** Adjectives (and an optional trailing texture phrase) the caption will use. */
function pickAdjectives(
  scene: Scene,
  rng: Rng,
  p: number,
  allowTail: boolean,
): { adjs: string[]; tail: string } {
  const adjs: string[] = [];
  let tail = '';
  if (rng.uniform() < p) adjs.push(rng.pick(SIZE_WORDS[scene.size]));
  if (rng.uniform() < p) adjs.push(rng.pick(COLOUR_WORDS[scene.colour]));
  if (scene.texture >= 0 && rng.uniform() < p) {
    const phrases = TEXTURE_PHRASES[scene.texture];
    if (allowTail && phrases.length > 0 && rng.uniform() < 0.4) tail = rng.pick(phrases);
    else adjs.push(rng.pick(TEXTURE_WORDS[scene.texture]));
  }
  rng.shuffle(adjs);
  return { adjs, tail };
}

function pickNoun(scene: Scene, rng: Rng, p: number): string {
  const named = scene.kind === 'shape' ? SHAPE_WORDS[scene.shape] : GARMENT_WORDS[scene.garment];
  const generic = scene.kind === 'shape' ? GENERIC_SHAPE_NOUNS : GENERIC_GARMENT_NOUNS;
  const noun = rng.uniform() < p ? rng.pick(named) : rng.pick(generic);
  return scene.count > 1 ? plural(noun) : noun;
}

/** "one"/"two"/... when the count is mentioned, else an article or plural determiner. */
function determiner(scene: Scene, rng: Rng, p: number, next: string): string {
  if (rng.uniform() < p) return rng.pick(COUNT_WORDS[scene.count - 1]);
  if (scene.count > 1) return rng.pick(PLURAL_DETERMINERS);
  return article(next);
}

function positionPhrase(scene: Scene, rng: Rng, p: number): string {
  if (scene.position < 0 || !(rng.uniform() < p)) return '';
  return rng.pick(PREPOSITIONS) + ' ' + rng.pick(POSITION_WORDS[scene.position]);
}

/** "small and red" / "small red and striped": 'and' only before the last adjective. */
function joinClause(adjs: string[]): string {
  if (adjs.length === 1) return adjs[0];
  return adjs.slice(0, -1).join(' ') + ' and ' + adjs[adjs.length - 1];
}

/**
 * The noun phrase: determiner, adjectives, noun, texture phrase, position, clause.
 * The clause style never takes the trailing texture phrase, which keeps the longest
 * caption at 15 words (16 tokens with END).
 */
function nounPhrase(scene: Scene, rng: Rng, o: CaptionOptions): string {
  const clause = rng.uniform() < o.clauseProb;
  const { adjs, tail } = pickAdjectives(scene, rng, o.mentionProb, !clause);
  const noun = pickNoun(scene, rng, o.nounProb);
  const pos = positionPhrase(scene, rng, o.mentionProb);
  const asClause = clause && adjs.length > 0;
  const pre = asClause ? [] : adjs;
  const det = determiner(scene, rng, o.mentionProb, pre.length > 0 ? pre[0] : noun);
  const parts = [det, ...pre, noun, tail, pos];
  if (asClause) parts.push(scene.count > 1 ? 'that are' : 'that is', joinClause(adjs));
  return parts.filter((s) => s.length > 0).join(' ');
}

/** One random caption of `scene`. */
export function describeScene(scene: Scene, rng: Rng, o: CaptionOptions): string {
  const np = nounPhrase(scene, rng, o);
  let frame = rng.pick(FRAMES);
  if (scene.count > 1) frame = frame.replace('there is', 'there are');
  return frame.replace('{}', np);
}
