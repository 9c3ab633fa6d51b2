/**
 * Fashion-MNIST from the Debian package `dataset-fashion-mnist` (idx files, gzipped).
 * The world needs real garments so that garment identity is something the image
 * tower must learn from pixels, not a procedural shortcut. Files are validated
 * (magic, dimensions, length) so that a broken install fails loudly with a message
 * that says how to fix it, instead of silently training on garbage.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_PACKAGE = 'dataset-fashion-mnist';
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** idx magic numbers: 0x0801 = unsigned byte, 1 dim; 0x0803 = unsigned byte, 3 dims. */
export const IDX_LABELS_MAGIC = 2049;
export const IDX_IMAGES_MAGIC = 2051;

/** The ten Fashion-MNIST classes, in label order (official names). */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export type FashionSplit = 'train' | 'test';

/** One split: `count` 28x28 grey images (0..255, row-major) and their labels. */
export interface FashionMnistSet {
  split: FashionSplit;
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
  /** image indices of each class, so scenes can draw a class first, then an image */
  byClass: Int32Array[];
}

/** A parsed idx file: its dimensions and the raw bytes after the header. */
export interface IdxFile {
  dims: number[];
  data: Uint8Array;
}

function fail(path: string, problem: string): never {
  throw new Error(
    `Fashion-MNIST file ${path}: ${problem}. Install the Debian package ` +
      `${FASHION_MNIST_PACKAGE} (apt-get install ${FASHION_MNIST_PACKAGE}), ` +
      `or point FASHION_MNIST_DIR at a directory with the idx files.`,
  );
}

/** File bytes, gunzipped when they start with the gzip magic. */
function readBytes(path: string): Uint8Array {
  if (!existsSync(path)) fail(path, 'file not found');
  const raw = readFileSync(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return new Uint8Array(gunzipSync(raw));
    } catch (e) {
      fail(path, `corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
}

/**
 * Parse and validate one idx file (plain or .gz). The magic must be `expectedMagic`
 * and the payload exactly the product of the dimensions: a short file is an
 * interrupted download or a wrong file, never something to pad.
 */
export function readIdx(path: string, expectedMagic: number): IdxFile {
  const bytes = readBytes(path);
  if (bytes.length < 4) fail(path, `file too short (${bytes.length} bytes) for an idx header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    fail(path, `wrong magic number ${magic} (expected ${expectedMagic})`);
  }
  const ndims = magic & 0xff;
  const header = 4 + 4 * ndims;
  if (bytes.length < header) fail(path, `truncated idx header (${bytes.length} bytes)`);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  const got = bytes.length - header;
  if (got !== expected) {
    fail(path, `expected ${expected} data bytes for dims [${dims.join(', ')}], found ${got}`);
  }
  return { dims, data: bytes.subarray(header) };
}

/** `name` itself if present, else `name.gz` (the Debian package ships .gz). */
function locate(dir: string, name: string): string {
  const plain = join(dir, name);
  if (existsSync(plain)) return plain;
  return plain + '.gz';
}

function groupByClass(labels: Uint8Array): Int32Array[] {
  const lists: number[][] = [];
  for (let c = 0; c < 10; c++) lists.push([]);
  for (let i = 0; i < labels.length; i++) lists[labels[i]].push(i);
  return lists.map((l) => Int32Array.from(l));
}

/** Read and cross-check the image and label files of one split. */
function loadSplit(dir: string, split: FashionSplit): FashionMnistSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgPath = locate(dir, `${prefix}-images-idx3-ubyte`);
  const lblPath = locate(dir, `${prefix}-labels-idx1-ubyte`);
  const img = readIdx(imgPath, IDX_IMAGES_MAGIC);
  const lbl = readIdx(lblPath, IDX_LABELS_MAGIC);
  const [count, rows, cols] = img.dims;
  if (rows !== 28 || cols !== 28) fail(imgPath, `expected 28x28 images, found ${rows}x${cols}`);
  if (lbl.dims[0] !== count) {
    fail(lblPath, `has ${lbl.dims[0]} labels but ${imgPath} has ${count} images`);
  }
  for (let i = 0; i < count; i++) {
    if (lbl.data[i] > 9) fail(lblPath, `label ${lbl.data[i]} at index ${i} is not in 0..9`);
  }
  const labels = lbl.data;
  return { split, images: img.data, labels, count, rows, cols, byClass: groupByClass(labels) };
}

const cache = new Map<string, FashionMnistSet>();

/**
 * Load one split, cached per process (the train split is ~47 MB and takes a few
 * hundred ms to gunzip, and every world/task builder wants it).
 */
export function loadFashionMnist(split: FashionSplit, dir?: string): FashionMnistSet {
  const d = dir ?? process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
  const key = `${d}\u0000${split}`;
  let set = cache.get(key);
  if (!set) {
    set = loadSplit(d, split);
    cache.set(key, set);
  }
  return set;
}

/** Forget cached splits (tests; freeing memory in a long notebook session). */
export function clearFashionMnistCache(): void {
  cache.clear();
}
