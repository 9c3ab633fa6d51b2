/**
 * Portable weights in the safetensors format (https://github.com/huggingface/safetensors),
 * the file open_clip, Hugging Face and the rest of the PyTorch ecosystem read.
 * Checkpoints (optimizer state, RNG, history) keep their own format in lib/runs/checkpoint.ts;
 * this file holds the weights alone.
 *
 * File layout (the spec, all integers little-endian):
 *   u64 N | header: N bytes of UTF-8 JSON | data: the tensors' bytes
 *   header = { "__metadata__": { string: string }?,
 *              "<name>": { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] }, ... }
 *   - `data_offsets` are byte offsets [begin, end) into the data section (after the header);
 *   - the header starts with '{' and is padded with spaces (0x20) so 8 + N is a multiple of 8;
 *   - the tensors fill the data section contiguously, no overlaps, no holes, in header order
 *     here; each is row-major (C order) float32 little-endian, so end − begin = 4·∏shape;
 *   - a scalar has shape [] and 4 bytes.
 *
 * What the lab stores: one tensor per parameter under the lab's own names and layout (the
 * keys of `Params`, lib/model/params.ts: `img.blocks.0.attn.qkv.w`, `txt.tok`, `logScale`…).
 * Dense weights `*.w` are [in, out] (y = x·W + b), unlike PyTorch's nn.Linear [out, in]; the
 * patch embedding `img.patch.w` is [P·P·3, D] over patches flattened (row, column, channel);
 * layer norms are `.g` (gain) and `.b` (bias). test/reference/towers.py reads exactly this.
 * The metadata carries `format: "contrastive-lab"` and `layout: "dense weights [in, out]"`,
 * plus whatever the caller adds (e.g. `config`: the model config as JSON).
 */
import * as fs from 'node:fs';
import { writeAtomic } from '../paths';
import type { Params } from './params';
import {
  assignWeights,
  type DecodedWeights,
  decodeWeights,
  encodeSafetensorsBytes,
  type SafeTensor,
  WEIGHTS_FORMAT,
  WEIGHTS_LAYOUT,
} from './safetensors-codec';

// the codec itself lives in safetensors-codec.ts (no file system: the browser explorer bundles it)
export * from './safetensors-codec';

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

/** Serialise float32 tensors (in the record's order) and string metadata to safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Buffer {
  const bytes = encodeSafetensorsBytes(tensors, metadata);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The parameters as safetensors bytes (lab names and layout) with the format tags + `metadata`. */
export function weightsBytes(params: Params, metadata: Record<string, string> = {}): Buffer {
  for (const k of ['format', 'layout'])
    if (k in metadata) fail(`metadata key '${k}' is reserved for the format tag`);
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, v] of Object.entries(params)) {
    if (v.dtype !== 'float32') fail(`parameter '${name}' is ${v.dtype}, only float32 is saved`);
    tensors[name] = { shape: v.shape, data: v.dataSync() as Float32Array };
  }
  return encodeSafetensors(tensors, {
    format: WEIGHTS_FORMAT,
    layout: WEIGHTS_LAYOUT,
    ...metadata,
  });
}

/**
 * Write the parameters to `file` (safetensors, lab names and layout), atomically: a temp file
 * in the same folder, fsync'd, renamed over the target, so a failed save leaves the old file
 * or none. `metadata` is added to the format tags (`format`, `layout`; those two are reserved).
 */
export async function saveWeights(
  file: string,
  params: Params,
  metadata: Record<string, string> = {},
): Promise<void> {
  writeAtomic(file, weightsBytes(params, metadata), { fsync: true });
}

/** A lab weights file's tensors and metadata; refuses other files, naming the problem. */
export function readWeights(file: string): DecodedWeights {
  return decodeWeights(fs.readFileSync(file), file);
}

/**
 * Read `file` into `params` (same names and shapes, lab layout) and return its metadata.
 * Refuses, naming them, files without the lab's format tag, tensors the model does not have,
 * and missing or mis-shaped parameters; nothing is assigned unless every check passes.
 */
export function loadWeights(file: string, params: Params): Record<string, string> {
  return assignWeights(params, readWeights(file), file);
}
