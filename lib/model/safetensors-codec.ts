/**
 * The safetensors codec without the file system: bytes ⇄ tensors, and the lab's
 * weights check (format tag, names, shapes). Pure (Uint8Array, DataView), so the
 * browser explorer (explore/) bundles it; safetensors.ts adds the file reads and
 * atomic writes and re-exports everything here. The format is described there.
 */
import { loadParams, type Params } from './params';

export interface SafeTensor {
  shape: number[];
  data: Float32Array;
}

export const WEIGHTS_FORMAT = 'contrastive-lab';
export const WEIGHTS_LAYOUT = 'dense weights [in, out]';

/** The reference implementation's limit on the header size; anything larger is not a header. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

function isShape(s: unknown): s is number[] {
  return Array.isArray(s) && s.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialise float32 tensors (in the record's order) and string metadata to safetensors bytes. */
export function encodeSafetensorsBytes(
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') fail(`metadata '${k}' must be a string, got ${typeof v}`);
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '' || name === METADATA_KEY) fail(`invalid tensor name '${name}'`);
    if (!isShape(t.shape)) fail(`tensor '${name}' has an invalid shape ${JSON.stringify(t.shape)}`);
    if (!(t.data instanceof Float32Array)) fail(`tensor '${name}' data must be a Float32Array`);
    if (t.data.length !== numel(t.shape))
      fail(
        `tensor '${name}' has ${t.data.length} values but shape [${t.shape}] needs ${numel(t.shape)}`,
      );
    const bytes = 4 * t.data.length;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  const view = new DataView(out.buffer, 8 + n, offset);
  let p = 0;
  for (const t of Object.values(tensors))
    for (let i = 0; i < t.data.length; i++, p += 4) view.setFloat32(p, t.data[i], true);
  return out;
}

interface Entry {
  name: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parse and validate safetensors bytes. Throws, naming the problem, on a truncated file, a bad
 * header length, bad JSON, a dtype other than F32, offsets out of range, overlapping or leaving
 * holes, and a shape that does not match its byte size. Tensors come back in data order.
 */
export function decodeSafetensors(buf: Uint8Array): {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
} {
  if (buf.length < 8)
    fail(`truncated file: ${buf.length} bytes, fewer than the 8-byte header length`);
  const n64 = new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true);
  if (n64 < 2n || n64 > BigInt(MAX_HEADER_BYTES))
    fail(`bad header length ${n64} (must be between 2 and ${MAX_HEADER_BYTES} bytes)`);
  const n = Number(n64);
  if (8 + n > buf.length)
    fail(`truncated file: header length ${n} exceeds the ${buf.length - 8} bytes after it`);
  const raw = buf.subarray(8, 8 + n);
  if (raw[0] !== 0x7b) fail("bad JSON header: it must start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    fail(`bad JSON header: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail('bad JSON header: not an object');

  const dataLen = buf.length - 8 - n;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof info !== 'object' || info === null || Array.isArray(info))
        fail(`bad JSON header: ${METADATA_KEY} must be an object of strings`);
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== 'string')
          fail(`bad JSON header: ${METADATA_KEY}.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof info !== 'object' || info === null)
      fail(`bad JSON header: entry '${name}' is not an object`);
    const { dtype, shape, data_offsets: off } = info as Record<string, unknown>;
    if (dtype !== 'F32')
      fail(`unsupported dtype ${JSON.stringify(dtype)} for tensor '${name}' (only F32 is read)`);
    if (!isShape(shape))
      fail(`bad JSON header: tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x)))
      fail(`bad JSON header: tensor '${name}' needs data_offsets [begin, end] of integers`);
    const [begin, end] = off as number[];
    if (begin < 0 || end < begin || end > dataLen)
      fail(
        `offsets out of range: tensor '${name}' has data_offsets [${begin}, ${end}] but the data section is ${dataLen} bytes` +
          (end > dataLen ? ' (truncated file?)' : ''),
      );
    if (end - begin !== 4 * numel(shape))
      fail(
        `shape/size mismatch: tensor '${name}' of shape [${shape}] needs ${4 * numel(shape)} bytes of F32, data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    entries.push({ name, shape, begin, end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin < at) fail(`overlapping offsets: tensor '${e.name}' starts at ${e.begin} < ${at}`);
    if (e.begin > at) fail(`hole in the data: bytes [${at}, ${e.begin}) belong to no tensor`);
    at = e.end;
  }
  if (at !== dataLen)
    fail(`data section is ${dataLen} bytes but the tensors cover ${at} (trailing bytes)`);

  const tensors: Record<string, SafeTensor> = {};
  const view = new DataView(buf.buffer, buf.byteOffset + 8 + n, dataLen);
  for (const e of entries) {
    const data = new Float32Array((e.end - e.begin) / 4);
    for (let i = 0, p = e.begin; i < data.length; i++, p += 4) data[i] = view.getFloat32(p, true);
    tensors[e.name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}

export type DecodedWeights = ReturnType<typeof decodeSafetensors>;

/** A lab weights file's tensors and metadata from its bytes; `source` names it in errors. */
export function decodeWeights(bytes: Uint8Array, source: string): DecodedWeights {
  let decoded: DecodedWeights;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new Error(`loadWeights ${source}: ${(e as Error).message}`);
  }
  const { metadata } = decoded;
  if (metadata.format !== WEIGHTS_FORMAT || metadata.layout !== WEIGHTS_LAYOUT)
    throw new Error(
      `loadWeights ${source}: not a ${WEIGHTS_FORMAT} weights file (metadata format=${JSON.stringify(metadata.format)}, layout=${JSON.stringify(metadata.layout)}; expected '${WEIGHTS_FORMAT}', '${WEIGHTS_LAYOUT}')`,
    );
  return decoded;
}

/**
 * Copy decoded weights into `params` (same names and shapes, lab layout) and return their
 * metadata. Refuses, naming them, tensors the model does not have and missing or mis-shaped
 * parameters; nothing is assigned unless every check passes.
 */
export function assignWeights(
  params: Params,
  { tensors, metadata }: DecodedWeights,
  source: string,
): Record<string, string> {
  const problems: string[] = [];
  const extra = Object.keys(tensors).filter((k) => !(k in params));
  if (extra.length) problems.push(`unknown tensors not in the model: ${extra.join(', ')}`);
  const missing = Object.keys(params).filter((k) => !(k in tensors));
  if (missing.length) problems.push(`missing parameters: ${missing.join(', ')}`);
  for (const [name, v] of Object.entries(params)) {
    const t = tensors[name];
    if (t && t.shape.join() !== v.shape.join())
      problems.push(`'${name}' has shape [${t.shape}], expected [${v.shape}]`);
  }
  if (problems.length) throw new Error(`loadWeights ${source}: ${problems.join('; ')}`);
  loadParams(params, tensors);
  return metadata;
}
