/**
 * Word-level tokenizer over the world's closed vocabulary. The world's language is
 * generated from a finite set of templates and synonyms, so a word list covers it
 * exactly: no subword machinery, and any UNK in a caption or prompt is a bug that the
 * tests catch.
 *
 * Layout of a row of `contextLength` ids: the word ids, then END, then PAD up to the
 * end. A text longer than `contextLength - 1` words is truncated so END is always
 * present and last-but-padding. `endIndex` of a row is the position of its END token:
 * the text tower pools its output at that position (CLIP-style end-of-text pooling),
 * and because the model is causal/padded after END that position has seen every word.
 */

export const PAD_TOKEN = '<pad>';
export const END_TOKEN = '<end>';
export const UNK_TOKEN = '<unk>';

/** Lowercase, drop apostrophes, turn any other punctuation into a space, split. */
export function normalizeWords(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/['\u2019]/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w.length > 0);
}

export class Tokenizer {
  /** id -> word; ids 0, 1, 2 are PAD, END, UNK; words follow in sorted order */
  readonly vocab: string[];
  readonly contextLength: number;
  readonly PAD = 0;
  readonly END = 1;
  readonly UNK = 2;
  private readonly ids: Map<string, number>;

  /**
   * @param words every word the world's captions and prompts can produce (duplicates
   *   and order do not matter: the vocabulary is sorted so ids are stable)
   * @param contextLength ids per row, END included
   */
  constructor(words: Iterable<string>, contextLength = 16) {
    if (!(contextLength >= 2)) throw new Error(`Tokenizer: contextLength must be >= 2`);
    const uniq = new Set<string>();
    for (const w of words) for (const n of normalizeWords(w)) uniq.add(n);
    const sorted = Array.from(uniq).sort();
    this.vocab = [PAD_TOKEN, END_TOKEN, UNK_TOKEN, ...sorted];
    this.contextLength = contextLength;
    this.ids = new Map(this.vocab.map((w, i) => [w, i]));
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** Id of one (already normalised) word, UNK if unknown. */
  wordId(word: string): number {
    const id = this.ids.get(word);
    return id === undefined || id < 3 ? this.UNK : id;
  }

  /** Write one row of ids into `out` at `offset`; returns the END position. */
  encodeInto(text: string, out: Int32Array, offset: number): number {
    const words = normalizeWords(text);
    const n = Math.min(words.length, this.contextLength - 1);
    for (let i = 0; i < n; i++) out[offset + i] = this.wordId(words[i]);
    out[offset + n] = this.END;
    for (let i = n + 1; i < this.contextLength; i++) out[offset + i] = this.PAD;
    return n;
  }

  /** [contextLength] ids: words, END, PAD... */
  encode(text: string): Int32Array {
    const out = new Int32Array(this.contextLength);
    this.encodeInto(text, out, 0);
    return out;
  }

  /** [texts.length, contextLength] ids, row-major. */
  encodeBatch(texts: string[]): Int32Array {
    const L = this.contextLength;
    const out = new Int32Array(texts.length * L);
    for (let i = 0; i < texts.length; i++) this.encodeInto(texts[i], out, i * L);
    return out;
  }

  /** Number of words `text` has after normalisation (to check it fits without truncation). */
  countWords(text: string): number {
    return normalizeWords(text).length;
  }

  /** Words up to END (PAD skipped, UNK shown as `<unk>`). */
  decode(ids: ArrayLike<number>): string {
    const words: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === this.END) break;
      if (id === this.PAD) continue;
      words.push(this.vocab[id] ?? UNK_TOKEN);
    }
    return words.join(' ');
  }

  /** Position of END in one row (contextLength - 1 if missing, i.e. never for our rows). */
  endIndex(ids: ArrayLike<number>, offset = 0): number {
    for (let i = 0; i < this.contextLength; i++) if (ids[offset + i] === this.END) return i;
    return this.contextLength - 1;
  }

  /** END position of each row of a [N, contextLength] batch. */
  endIndices(tokens: Int32Array): Int32Array {
    const n = Math.floor(tokens.length / this.contextLength);
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) out[r] = this.endIndex(tokens, r * this.contextLength);
    return out;
  }
}
