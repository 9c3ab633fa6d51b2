/**
 * Portable weights (lib/model/safetensors.ts): the safetensors encoder and decoder against
 * the spec, byte by byte; corrupted and truncated files refused with the problem named; atomic
 * saves; and a tiny lab model exported with saveWeights, loaded by the independent PyTorch
 * reader (test/reference/load_safetensors.py → towers.py) whose forward pass matches the lab's,
 * and re-imported with loadWeights bit for bit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  disposeParams,
  encodeImages,
  encodeTexts,
  initParams,
  loadParams,
  type ModelConfig,
  type Towers,
} from '../lib/model/index';
import {
  decodeSafetensors,
  encodeSafetensors,
  loadWeights,
  type SafeTensor,
  saveWeights,
} from '../lib/model/safetensors';
import { textTowerSpecs } from '../lib/model/text';
import { imageTowerSpecs } from '../lib/model/vit';
import { Rng } from '../lib/rng';
import { setup } from './helpers';

before(setup);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-safetensors-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

/** A file assembled by hand: u64 header length, the header text as given, then the data bytes. */
function rawFile(header: string, data: Buffer | number[] = []): Buffer {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.from(data as number[])]);
}

// ---------------------------------------------------------------- (a) format

test('encode writes the spec layout byte for byte', () => {
  const buf = encodeSafetensors({ a: { shape: [2], data: Float32Array.of(1, -2) } });
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 54 bytes → padded to 56
  const expected = Buffer.concat([
    Buffer.from([56, 0, 0, 0, 0, 0, 0, 0]), // u64 little-endian header length
    Buffer.from(json + '  ', 'utf8'), // spaces up to 8-byte alignment
    Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]), // 1.0f, -2.0f little-endian
  ]);
  assert.equal(json.length, 54);
  assert.deepEqual([...buf], [...expected]);
});

test('encode → decode is exact: metadata, scalars, empty tensors, NaN / ±0 / ±Inf / subnormals', () => {
  const rng = new Rng(3);
  const tensors: Record<string, SafeTensor> = {
    'img.blocks.0.attn.qkv.w': {
      shape: [3, 5],
      data: Float32Array.from({ length: 15 }, () => rng.normal()),
    },
    logScale: { shape: [], data: Float32Array.of(Math.log(10)) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
    special: {
      shape: [2, 3],
      data: Float32Array.of(Number.NaN, -0, 0, Number.POSITIVE_INFINITY, -Infinity, 1e-45),
    },
    'a.b': { shape: [1, 1, 2], data: Float32Array.of(3.25, -7) },
  };
  const metadata = { format: 'x', config: JSON.stringify({ é: 'ü ✓', n: [1, 2] }) };
  const buf = encodeSafetensors(tensors, metadata);

  // the header, read by hand
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'data section starts 8-byte aligned');
  const text = buf.subarray(8, 8 + n).toString('utf8');
  assert.equal(text[0], '{');
  assert.match(text, /^\{.*\} *$/s, 'padding is spaces only');
  const header = JSON.parse(text);
  assert.deepEqual(Object.keys(header), ['__metadata__', ...Object.keys(tensors)]);
  assert.deepEqual(header.__metadata__, metadata);
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = 4 * t.data.length;
    assert.deepEqual(header[name], {
      dtype: 'F32',
      shape: t.shape,
      data_offsets: [at, at + bytes],
    });
    for (let i = 0; i < t.data.length; i++) {
      const got = buf.readUInt32LE(8 + n + at + 4 * i);
      assert.equal(got, bits(t.data)[i], `${name}[${i}] stored little-endian`);
    }
    at += bytes;
  }
  assert.equal(buf.length, 8 + n + at, 'contiguous, no trailing bytes');

  const back = decodeSafetensors(buf);
  assert.deepEqual(back.metadata, metadata);
  assert.deepEqual(Object.keys(back.tensors), Object.keys(tensors));
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(back.tensors[name].shape, t.shape);
    assert.deepEqual(bits(back.tensors[name].data), bits(t.data), `${name} bit-exact`);
  }
  // without metadata there is no __metadata__ key at all
  const bare = encodeSafetensors({ x: { shape: [1], data: Float32Array.of(1) } });
  assert.ok(!bare.toString('utf8').includes('__metadata__'));
  assert.deepEqual(decodeSafetensors(bare).metadata, {});
});

test('decode reads files written in another order (header keys sorted, data not in header order)', () => {
  // as Python's safetensors writes: keys sorted, __metadata__ anywhere, offsets in any order
  const header =
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"__metadata__":{"k":"v"},' +
    '"b":{"data_offsets":[0,8],"shape":[2],"dtype":"F32"}}';
  const data = Buffer.alloc(12);
  data.writeFloatLE(1.5, 0);
  data.writeFloatLE(2.5, 4);
  data.writeFloatLE(-3, 8);
  const { tensors, metadata } = decodeSafetensors(rawFile(header, data)); // unpadded is legal too
  assert.deepEqual(metadata, { k: 'v' });
  assert.deepEqual(Array.from(tensors.b.data), [1.5, 2.5]);
  assert.deepEqual(Array.from(tensors.a.data), [-3]);
});

// ---------------------------------------------------------------- (b) corruption

test('corrupted and truncated files are refused, naming the problem', () => {
  const good = encodeSafetensors(
    {
      w: { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) },
      b: { shape: [2], data: Float32Array.of(5, 6) },
    },
    { format: 'contrastive-lab' },
  );
  const n = Number(good.readBigUInt64LE(0));
  const entry = (name: string, dtype: string, shape: number[], off: number[]) =>
    `"${name}":{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(off)}}`;
  const withLen = (len: bigint) => {
    const b = Buffer.from(good);
    b.writeBigUInt64LE(len);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [
    ['empty file', Buffer.alloc(0), /truncated file: 0 bytes/],
    ['5 bytes', good.subarray(0, 5), /truncated file: 5 bytes/],
    ['cut inside the header', good.subarray(0, 8 + n - 3), /truncated file: header length/],
    ['cut inside the data', good.subarray(0, good.length - 4), /offsets out of range.*truncated/],
    ['header length 2^63', withLen(2n ** 63n), /bad header length/],
    ['header length 0', withLen(0n), /bad header length 0/],
    ['extra bytes after the data', Buffer.concat([good, Buffer.alloc(4)]), /trailing bytes/],
    ['not JSON', rawFile('{"w": [1, 2'), /bad JSON header/],
    ['not an object', rawFile('{}').fill(0x5b, 8, 9), /bad JSON header: it must start with '\{'/],
    ['invalid UTF-8', rawFile('{"\xff": 1}').fill(0xff, 10, 11), /bad JSON header/],
    [
      'F16 tensor',
      rawFile(`{${entry('h', 'F16', [2], [0, 4])}}`, [0, 0, 0, 0]),
      /unsupported dtype "F16" for tensor 'h'/,
    ],
    [
      'offsets past the end',
      rawFile(`{${entry('w', 'F32', [2], [0, 8])}}`, [0, 0, 0, 0]),
      /offsets out of range: tensor 'w'/,
    ],
    [
      'end before begin',
      rawFile(`{${entry('w', 'F32', [0], [4, 0])}}`, [0, 0, 0, 0]),
      /offsets out of range: tensor 'w'/,
    ],
    [
      'overlapping tensors',
      rawFile(
        `{${entry('x', 'F32', [2], [0, 8])},${entry('y', 'F32', [2], [4, 12])}}`,
        Array(12).fill(0),
      ),
      /overlapping offsets: tensor 'y'/,
    ],
    [
      'a hole between tensors',
      rawFile(
        `{${entry('x', 'F32', [1], [0, 4])},${entry('y', 'F32', [1], [8, 12])}}`,
        Array(12).fill(0),
      ),
      /hole in the data: bytes \[4, 8\)/,
    ],
    [
      'shape/size mismatch',
      rawFile(`{${entry('w', 'F32', [3], [0, 8])}}`, Array(8).fill(0)),
      /shape\/size mismatch: tensor 'w' of shape \[3\] needs 12 bytes/,
    ],
    [
      'negative dimension',
      rawFile(`{${entry('w', 'F32', [-2], [0, 8])}}`, Array(8).fill(0)),
      /tensor 'w' has an invalid shape/,
    ],
    [
      'metadata not strings',
      rawFile('{"__metadata__":{"n":3}}'),
      /__metadata__\.n must be a string/,
    ],
  ];
  for (const [what, buf, re] of cases)
    assert.throws(() => decodeSafetensors(buf), re, `${what} should be refused with ${re}`);
  // every truncation of a good file is refused (never a silent partial read)
  for (let cut = 0; cut < good.length; cut++)
    assert.throws(() => decodeSafetensors(good.subarray(0, cut)), /safetensors: /, `cut at ${cut}`);
});

test('encode refuses data that does not match its shape', () => {
  assert.throws(
    () => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    /'w' has 3 values but shape \[2,2\] needs 4/,
  );
});

test('a failed save leaves no half-written file and keeps the previous one', async () => {
  const params = { w: tf.variable(tf.tensor2d([1, 2, 3, 4], [2, 2])) };
  const sub = fs.mkdtempSync(path.join(dir, 'save-'));
  const file = path.join(sub, 'w.safetensors');
  await saveWeights(file, params);
  const before = fs.readFileSync(file);

  // the rename fails: the target is a folder
  const blocked = path.join(sub, 'blocked.safetensors');
  fs.mkdirSync(blocked);
  await assert.rejects(saveWeights(blocked, params));
  // reading the values fails midway: a disposed parameter
  const broken = { ...params, z: tf.variable(tf.zeros([3])) };
  broken.z.dispose();
  await assert.rejects(saveWeights(file, broken));
  // reserved metadata
  await assert.rejects(saveWeights(file, params, { format: 'other' }), /'format' is reserved/);

  assert.deepEqual(fs.readdirSync(sub).sort(), ['blocked.safetensors', 'w.safetensors']);
  assert.ok(fs.statSync(blocked).isDirectory());
  assert.deepEqual([...fs.readFileSync(file)], [...before], 'the previous file is untouched');
  params.w.dispose();
});

test('loadWeights refuses unknown, missing and mis-shaped tensors and foreign files, assigning nothing', async () => {
  const params = {
    w: tf.variable(tf.tensor2d([1, 2, 3, 4], [2, 2])),
    b: tf.variable(tf.tensor1d([5, 6])),
  };
  const write = (name: string, t: Record<string, SafeTensor>, meta?: Record<string, string>) => {
    const f = path.join(dir, name);
    fs.writeFileSync(
      f,
      encodeSafetensors(
        t,
        meta ?? { format: 'contrastive-lab', layout: 'dense weights [in, out]' },
      ),
    );
    return f;
  };
  const w = { shape: [2, 2], data: Float32Array.of(9, 9, 9, 9) };
  const b = { shape: [2], data: Float32Array.of(9, 9) };
  const cases: [string, string, RegExp][] = [
    [
      'extra',
      write('extra.safetensors', { w, b, 'img.ghost': b, zz: b }),
      /unknown tensors not in the model: img\.ghost, zz/,
    ],
    ['missing', write('missing.safetensors', { w }), /missing parameters: b/],
    [
      'shape',
      write('shape.safetensors', { w: { shape: [4], data: w.data }, b }),
      /'w' has shape \[4\], expected \[2,2\]/,
    ],
    ['foreign', write('foreign.safetensors', { w, b }, {}), /not a contrastive-lab weights file/],
    [
      'truncated',
      write('truncated.safetensors', { w, b }),
      /loadWeights .*truncated\.safetensors: safetensors: truncated file/,
    ],
  ];
  fs.truncateSync(cases[4][1], 20);
  for (const [what, file, re] of cases) {
    assert.throws(() => loadWeights(file, params), re, what);
    assert.deepEqual(Array.from(params.w.dataSync()), [1, 2, 3, 4], `${what}: nothing assigned`);
  }
  const ok = write(
    'ok.safetensors',
    { b, w },
    { format: 'contrastive-lab', layout: 'dense weights [in, out]', x: '1' },
  );
  assert.equal(loadWeights(ok, params).x, '1');
  assert.deepEqual(Array.from(params.w.dataSync()), [9, 9, 9, 9]);
  disposeParams(params);
});

// ---------------------------------------------------------------- (c, d) a lab model

const PYTHON = '/usr/bin/python3';
const LOADER = path.join(__dirname, 'reference', 'load_safetensors.py');

function requireTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (r.error || r.status !== 0)
    assert.fail(
      `PyTorch reference unavailable (${PYTHON} -c 'import torch, numpy' failed): install the Debian package python3-torch (apt-get install python3-torch)`,
    );
}

function tinyConfig(pool: 'map' | 'cls' | 'mean', registers: number): ModelConfig {
  return {
    image: { imageSize: 32, patch: 8, width: 16, depth: 2, heads: 2, mlpRatio: 2, pool, registers },
    text: { vocabSize: 13, contextLength: 7, width: 24, depth: 2, heads: 3, mlpRatio: 2 },
    embedDim: 8,
  };
}

/**
 * The towers of a tiny model plus an objective's learnable scalars, as a trained model's
 * parameters hold them (built from the tower specs, so it follows lib/model as it changes).
 */
function tinyTowers(cfg: ModelConfig, seed: number): Towers {
  const params = initParams(
    {
      ...imageTowerSpecs(cfg.image, cfg.embedDim),
      ...textTowerSpecs(cfg.text, cfg.embedDim),
      logScale: { shape: [], init: 'const', value: Math.log(10), decay: false },
      bias: { shape: [], init: 'const', value: -10, decay: false },
    },
    seed,
  );
  return { config: cfg, params, endId: 1 };
}

/** Every parameter random (biases and layer norms too, so a mislaid one shows). */
function randomize(model: Towers, seed: number): void {
  const rng = new Rng(seed);
  const values: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, v] of Object.entries(model.params)) {
    const scale = v.shape.length === 2 ? 0.8 / Math.sqrt(v.shape[0]) : 0.2;
    const data = Float32Array.from({ length: v.size }, () => rng.normal() * scale);
    if (name.endsWith('.g')) for (let i = 0; i < data.length; i++) data[i] += 1;
    values[name] = { shape: v.shape, data };
  }
  loadParams(model.params, values);
}

const B = 5;
function inputs(L: number): { images: Float32Array; tokens: Int32Array } {
  const rng = new Rng(17);
  const images = Float32Array.from({ length: B * 32 * 32 * 3 }, () => rng.uniform());
  // END (1) at different positions, PAD (0) after it; the last row has no END (pools at L − 1)
  const rows = [
    [5, 6, 7, 1, 0, 0, 0],
    [3, 1, 0, 0, 0, 0, 0],
    [4, 4, 9, 11, 10, 12, 1],
    [1, 0, 0, 0, 0, 0, 0],
    [2, 8, 3, 6, 5, 7, 12],
  ];
  assert.equal(rows[0].length, L);
  return { images, tokens: Int32Array.from(rows.flat()) };
}

function embed(model: Towers, x: { images: Float32Array; tokens: Int32Array }) {
  return tf.tidy(() => {
    const img = encodeImages(model, tf.tensor4d(x.images, [B, 32, 32, 3]));
    const txt = encodeTexts(model, x.tokens, B);
    return { img: img.dataSync() as Float32Array, txt: txt.dataSync() as Float32Array };
  });
}

function maxAbsDiff(a: Float32Array, b: number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

for (const [pool, registers] of [
  ['map', 1],
  ['cls', 2],
  ['mean', 0],
] as const) {
  test(`a tiny lab model (${pool} pool, ${registers} registers) saved as safetensors: PyTorch forward matches, reload is bit-exact`, async (t) => {
    requireTorch();
    const cfg = tinyConfig(pool, registers);
    const model = tinyTowers(cfg, 0);
    randomize(model, 100 + registers);
    const x = inputs(cfg.text.contextLength);
    const lab = embed(model, x);

    const file = path.join(dir, `${pool}.safetensors`);
    await saveWeights(file, model.params, {
      config: JSON.stringify(cfg),
      endId: String(model.endId),
    });
    const inFile = path.join(dir, `${pool}-inputs.json`);
    fs.writeFileSync(
      inFile,
      JSON.stringify({ images: Array.from(x.images), tokens: Array.from(x.tokens) }),
    );

    // (c) the independent PyTorch reader and towers, float64
    const r = spawnSync(PYTHON, [LOADER, file, inFile], { encoding: 'utf8' });
    if (r.error)
      assert.fail(`${PYTHON}: ${r.error.message}; install the Debian package python3-torch`);
    assert.equal(r.status, 0, `load_safetensors.py failed:\n${r.stderr}`);
    const ref = JSON.parse(r.stdout) as { imgEmb: number[][]; txtEmb: number[][] };
    const dImg = maxAbsDiff(lab.img, ref.imgEmb.flat());
    const dTxt = maxAbsDiff(lab.txt, ref.txtEmb.flat());
    t.diagnostic(
      `max |lab − PyTorch|: image ${dImg.toExponential(2)}, text ${dTxt.toExponential(2)}`,
    );
    assert.ok(dImg <= 1e-4, `image embeddings differ from PyTorch by ${dImg}`);
    assert.ok(dTxt <= 1e-4, `text embeddings differ from PyTorch by ${dTxt}`);

    // (d) a fresh model of the same config (other init), loaded from the file: identical bits
    const fresh = tinyTowers(cfg, 7);
    assert.notDeepEqual(bits(embed(fresh, x).img), bits(lab.img), 'fresh model differs before');
    const meta = loadWeights(file, fresh.params);
    assert.deepEqual(JSON.parse(meta.config), cfg);
    assert.equal(meta.format, 'contrastive-lab');
    const again = embed(fresh, x);
    assert.deepEqual(bits(again.img), bits(lab.img), 'image embeddings bit for bit');
    assert.deepEqual(bits(again.txt), bits(lab.txt), 'text embeddings bit for bit');
    for (const [name, v] of Object.entries(model.params))
      assert.deepEqual(
        bits(fresh.params[name].dataSync() as Float32Array),
        bits(v.dataSync() as Float32Array),
        name,
      );

    disposeParams(model.params);
    disposeParams(fresh.params);
  });
}
