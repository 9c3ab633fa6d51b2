/**
 * Data layer: determinism, value ranges, held-out compositions, tokenizer coverage,
 * task-suite shape, Fashion-MNIST validation, and a render-speed print.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  buildTaskSuite,
  COLOURS,
  createWorld,
  FASHION_MNIST_PACKAGE,
  loadFashionMnist,
  PIXELS,
  readIdx,
  SHAPES,
  type Task,
  Tokenizer,
} from '../lib/data';
import { COLOUR_WORDS, GARMENT_WORDS, SHAPE_WORDS, SIZE_WORDS } from '../lib/data/language';
import { GARMENTS } from '../lib/data/scene';
import { Rng } from '../lib/rng';

const world = createWorld({ trainScenes: 5000 });
let suite: Task[] | null = null;
const tasks = (): Task[] => {
  suite ??= buildTaskSuite(world, { queryPerClass: 20 });
  return suite;
};

function assertUnitRange(images: Float32Array): void {
  for (let i = 0; i < images.length; i++) {
    const v = images[i];
    if (!(v >= 0 && v <= 1)) assert.fail(`pixel ${i} = ${v} outside [0, 1]`);
  }
}

function assertNoUnk(tok: Tokenizer, text: string): void {
  const ids = tok.encode(text);
  assert.ok(!ids.includes(tok.UNK), `UNK in "${text}" -> ${tok.decode(ids)}`);
  assert.ok(tok.countWords(text) <= tok.contextLength - 1, `"${text}" does not fit`);
}

test('same seed gives identical batches, a different seed different ones', () => {
  const a = createWorld({ seed: 3, trainScenes: 500 }).sampleBatch(new Rng(9), 32);
  const b = createWorld({ seed: 3, trainScenes: 500 }).sampleBatch(new Rng(9), 32);
  const c = createWorld({ seed: 4, trainScenes: 500 }).sampleBatch(new Rng(9), 32);
  assert.deepEqual(Buffer.from(a.images.buffer), Buffer.from(b.images.buffer));
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.captions, b.captions);
  assert.notDeepEqual(Buffer.from(a.images.buffer), Buffer.from(c.images.buffer));
});

test('images are in [0, 1], shaped [B, 32, 32, 3], and not blank', () => {
  const batch = world.sampleBatch(new Rng(1), 64);
  assert.equal(batch.images.length, 64 * PIXELS);
  assert.equal(batch.tokens.length, 64 * world.tokenizer.contextLength);
  assertUnitRange(batch.images);
  let min = 1;
  let max = 0;
  for (const v of batch.images) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  assert.ok(max - min > 0.5, 'images should have contrast');
});

test('held-out compositions never occur in train, but do in val/test', () => {
  for (const s of world.scenes('train')) assert.ok(!world.isHeldOut(s), JSON.stringify(s));
  const rng = new Rng(2);
  for (let k = 0; k < 40; k++) {
    for (const s of world.sampleScenes(rng, 256, 'train')) assert.ok(!world.isHeldOut(s));
  }
  const held = world.scenes('val').filter((s) => world.isHeldOut(s)).length;
  assert.ok(held > 0, 'val should contain some held-out pairs');
  assert.ok(world.scenes('train').every((s) => s.kind === 'shape' || s.garmentSource === 'train'));
});

test('held-out pairs are not solvable by one attribute', () => {
  for (const pairs of [world.heldOut.shapeColour, world.heldOut.garmentColour]) {
    const per = (i: 0 | 1) => {
      const m = new Map<number, number>();
      for (const p of pairs) m.set(p[i], (m.get(p[i]) ?? 0) + 1);
      return [...m.values()];
    };
    assert.ok(per(0).every((n) => n >= 2) && per(1).every((n) => n >= 2));
  }
});

test('every caption tokenizes without UNK and fits the context', () => {
  const tok = world.tokenizer;
  const rng = new Rng(5);
  for (let k = 0; k < 40; k++) {
    for (const c of world.sampleBatch(rng, 64).captions) assertNoUnk(tok, c);
  }
  const wordy = createWorld({ trainScenes: 500, mentionProb: 1, nounProb: 1, clauseProb: 0.5 });
  for (const s of wordy.scenes('train')) {
    for (let k = 0; k < 4; k++) assertNoUnk(tok, wordy.describe(s, rng));
  }
});

test('attributes are mentioned evenly in captions', () => {
  const rng = new Rng(6);
  const captions = world.sampleBatch(rng, 2000).captions.map((c) => ` ${c} `);
  const rate = (words: string[][]) =>
    captions.filter((c) => words.flat().some((w) => c.includes(` ${w} `))).length / captions.length;
  const colour = rate(COLOUR_WORDS);
  const size = rate(SIZE_WORDS);
  assert.ok(Math.abs(colour - 0.6) < 0.06 && Math.abs(size - 0.6) < 0.06, `${colour} ${size}`);
});

test('canonical attribute words match the class names', () => {
  assert.deepEqual(
    SHAPE_WORDS.map((w) => w[0]),
    SHAPES,
  );
  assert.deepEqual(
    COLOUR_WORDS.map((w) => w[0]),
    COLOURS,
  );
  assert.deepEqual(
    GARMENT_WORDS.map((w) => w[0]),
    GARMENTS,
  );
});

test('tokenizer: END, PAD, UNK, truncation, decode', () => {
  const tok = new Tokenizer(['a red star', 'blue'], 6);
  assert.deepEqual(tok.vocab.slice(0, 3), ['<pad>', '<end>', '<unk>']);
  const ids = tok.encode('A RED, star!');
  assert.equal(tok.decode(ids), 'a red star');
  assert.equal(tok.endIndex(ids), 3);
  assert.equal(ids[4], tok.PAD);
  assert.equal(tok.encode('a green star')[1], tok.UNK);
  const long = tok.encode('a red star a red star a red');
  assert.equal(long[5], tok.END, 'END kept last when truncating');
  assert.deepEqual(Array.from(tok.endIndices(tok.encodeBatch(['a', 'red star blue']))), [1, 3]);
});

test('the suite has >= 12 tasks whose names and prompts tokenize', () => {
  const tok = world.tokenizer;
  assert.ok(tasks().length >= 12);
  assert.equal(new Set(tasks().map((t) => t.name)).size, tasks().length);
  for (const t of tasks()) {
    assert.ok(t.templates.length >= 3, t.name);
    for (const tpl of t.templates) {
      assert.ok(tpl.includes('{}'), `${t.name}: ${tpl}`);
      for (const c of t.classNames) assertNoUnk(tok, tpl.replace('{}', c));
    }
    assert.equal(t.chance, 1 / t.classNames.length);
  }
});

function classCounts(labels: Int32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

test('task support pools have >= 16 per class and labels are balanced', () => {
  for (const t of tasks()) {
    const n = t.classNames.length;
    const sup = classCounts(t.support.labels, n);
    const qry = classCounts(t.query.labels, n);
    assert.ok(
      sup.every((c) => c >= 16 && c === sup[0]),
      `${t.name} support ${sup}`,
    );
    assert.ok(
      qry.every((c) => c === 20),
      `${t.name} query ${qry}`,
    );
    assert.equal(t.support.images.length, t.support.size * PIXELS);
    assert.equal(t.query.images.length, t.query.size * PIXELS);
    assertUnitRange(t.query.images);
  }
});

test('task suite is deterministic from its seed', () => {
  const a = buildTaskSuite(world, { seed: 11, queryPerClass: 2, supportPerClass: 16 });
  const b = buildTaskSuite(world, { seed: 11, queryPerClass: 2, supportPerClass: 16 });
  const c = buildTaskSuite(world, { seed: 12, queryPerClass: 2, supportPerClass: 16 });
  a.forEach((t, i) => {
    assert.deepEqual(Buffer.from(t.query.images.buffer), Buffer.from(b[i].query.images.buffer));
    assert.deepEqual(t.support.labels, b[i].support.labels);
  });
  assert.notDeepEqual(Buffer.from(a[0].query.images.buffer), Buffer.from(c[0].query.images.buffer));
});

function idxHeader(magic: number, dims: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * dims.length);
  b.writeUInt32BE(magic, 0);
  for (let i = 0; i < dims.length; i++) b.writeUInt32BE(dims[i], 4 + 4 * i);
  return b;
}

test('fashion-mnist loader rejects bad files with a message naming the package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fmnist-'));
  const expectError = (path: string, magic: number, what: RegExp) =>
    assert.throws(
      () => readIdx(path, magic),
      (e: Error) =>
        e.message.includes(path) &&
        e.message.includes(FASHION_MNIST_PACKAGE) &&
        what.test(e.message),
    );
  const truncated = join(dir, 'truncated-images-idx3-ubyte');
  writeFileSync(truncated, Buffer.concat([idxHeader(2051, [10, 28, 28]), Buffer.alloc(100)]));
  expectError(truncated, 2051, /expected 7840 data bytes/);
  const wrongMagic = join(dir, 'wrong-magic-idx1-ubyte.gz');
  writeFileSync(wrongMagic, gzipSync(Buffer.concat([idxHeader(1234, [3]), Buffer.alloc(3)])));
  expectError(wrongMagic, 2049, /wrong magic/);
  const badGzip = join(dir, 'cut-labels-idx1-ubyte.gz');
  const gz = gzipSync(Buffer.concat([idxHeader(2049, [1000]), Buffer.alloc(1000)]));
  writeFileSync(badGzip, gz.subarray(0, gz.length - 12));
  expectError(badGzip, 2049, /gzip/);
  assert.throws(
    () => loadFashionMnist('train', dir),
    (e: Error) => e.message.includes(FASHION_MNIST_PACKAGE) && /not found/.test(e.message),
  );
});

test('fashion-mnist loads from the Debian package', () => {
  const train = loadFashionMnist('train');
  const testSet = loadFashionMnist('test');
  assert.equal(train.count, 60000);
  assert.equal(testSet.count, 10000);
  assert.equal(train.images.length, 60000 * 784);
  assert.ok(train.byClass.every((ix) => ix.length === 6000));
});

test('timing: render 256 images (print only)', () => {
  const rng = new Rng(8);
  const times: number[] = [];
  for (let k = 0; k < 15; k++) {
    const scenes = world.sampleScenes(rng, 256);
    const out = new Float32Array(256 * PIXELS);
    const t0 = performance.now();
    for (let i = 0; i < 256; i++) world.renderInto(scenes[i], out, i * PIXELS);
    times.push(performance.now() - t0);
  }
  const full: number[] = [];
  for (let k = 0; k < 9; k++) {
    const t0 = performance.now();
    world.sampleBatch(rng, 256);
    full.push(performance.now() - t0);
  }
  full.sort((a, b) => a - b);
  times.sort((a, b) => a - b);
  const ms = (v: number) => v.toFixed(1);
  console.log(
    `render 256 images: min ${ms(times[0])} ms, median ${ms(times[7])} ms; ` +
      `full sampleBatch(256) with captions + tokens: median ${ms(full[4])} ms`,
  );
});
