/**
 * Is a figure file a real, non-blank image? `npm run figures` checks everything it
 * writes with these, and test/figures.test.ts checks them (and the files) again.
 *   PNG: the signature, IHDR, the IDAT stream inflated and unfiltered (8-bit
 *        grey, RGB or RGBA), and at least two distinct pixel colours.
 *   SVG: well-formed tags (every opened tag closed, in order), an <svg> root, and
 *        drawn content (<path>, <image>, <text>, <rect>, ...), not only an empty frame.
 */
import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** The PNG's size and pixels (unfiltered rows, no palette); throws on anything else. */
export function decodePng(buf: Buffer): {
  width: number;
  height: number;
  channels: number;
  pixels: Buffer;
} {
  if (buf.length < 33 || !buf.subarray(0, 8).equals(SIGNATURE))
    throw new Error('not a PNG (signature)');
  let [width, height, channels] = [0, 0, 0];
  const idat: Buffer[] = [];
  for (let off = 8; off + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      [width, height] = [data.readUInt32BE(0), data.readUInt32BE(4)];
      if (data[8] !== 8 || !(data[9] in CHANNELS) || data[12] !== 0)
        throw new Error(
          `PNG: only 8-bit, non-interlaced grey/RGB/RGBA is checked (depth ${data[8]}, type ${data[9]})`,
        );
      channels = CHANNELS[data[9]];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (!width || !height || !idat.length) throw new Error('PNG: no IHDR or IDAT');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('PNG: truncated image data');
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f];
      if (pred === undefined) throw new Error(`PNG: bad filter ${f} in row ${y}`);
      px[y * stride + x] = (v + pred) & 255;
    }
  }
  return { width, height, channels, pixels: px };
}

/** Throws unless `buf` is a decodable PNG with at least two distinct colours. */
export function checkPng(buf: Buffer): { width: number; height: number; colours: number } {
  const { width, height, channels, pixels } = decodePng(buf);
  const seen = new Set<string>();
  for (let i = 0; i < pixels.length && seen.size < 16; i += channels)
    seen.add(pixels.subarray(i, i + channels).toString('hex'));
  if (seen.size < 2) throw new Error(`PNG ${width}×${height} is blank (one colour)`);
  return { width, height, colours: seen.size };
}

const DRAWN = /<(path|image|text|rect|circle|line|polyline|polygon)\b/g;

/** Throws unless `svg` is well-formed, rooted at <svg>, and draws something. */
export function checkSvg(svg: string): { elements: number } {
  const body = svg.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const stack: string[] = [];
  let root = '';
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:.-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (!root && !close) root = name;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`SVG: </${name}> closes <${open ?? 'nothing'}>`);
    } else if (!self) stack.push(name);
  }
  if (root !== 'svg') throw new Error(`SVG: root is <${root || 'nothing'}>`);
  if (stack.length) throw new Error(`SVG: unclosed <${stack.join('>, <')}>`);
  const elements = (body.match(DRAWN) ?? []).length;
  if (elements === 0) throw new Error('SVG draws nothing');
  return { elements };
}
