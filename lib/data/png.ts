/**
 * Minimal PNG writer (8-bit RGB, no interlace) and an image-grid helper, so notebooks
 * and scripts can look at world samples without an image library: the format needs
 * only zlib (in node) and a CRC-32.
 */
import { deflateSync } from 'node:zlib';
import { IMAGE_SIZE, PIXELS } from './types';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One chunk: length, type, data, CRC over type + data. */
function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encode `rgb` ([height, width, 3] bytes, row-major) as a PNG file. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) {
    throw new Error(`encodePng: expected ${width * height * 3} bytes, got ${rgb.length}`);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, filter 0, no interlace
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + width * 3)] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/**
 * Tile the first `n` images of a [N, 32, 32, 3] float batch into `cols` columns,
 * each scaled by an integer `scale` (nearest neighbour, so pixels stay visible),
 * with a 1-pixel grey gutter.
 */
export function imageGrid(
  images: Float32Array,
  n: number,
  cols: number,
  scale = 4,
): { rgb: Uint8Array; width: number; height: number } {
  const cell = IMAGE_SIZE * scale + 1;
  const rows = Math.ceil(n / cols);
  const width = cols * cell + 1;
  const height = rows * cell + 1;
  const rgb = new Uint8Array(width * height * 3).fill(128);
  for (let k = 0; k < n; k++) {
    const ox = (k % cols) * cell + 1;
    const oy = Math.floor(k / cols) * cell + 1;
    for (let y = 0; y < IMAGE_SIZE * scale; y++) {
      for (let x = 0; x < IMAGE_SIZE * scale; x++) {
        const src = k * PIXELS + (Math.floor(y / scale) * IMAGE_SIZE + Math.floor(x / scale)) * 3;
        const dst = ((oy + y) * width + ox + x) * 3;
        for (let c = 0; c < 3; c++) {
          rgb[dst + c] = Math.round(Math.max(0, Math.min(1, images[src + c])) * 255);
        }
      }
    }
  }
  return { rgb, width, height };
}
