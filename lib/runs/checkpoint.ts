/**
 * Checkpoints that survive a kill -9 and resume bit-identically. One file holds
 * everything a step depends on: parameters, AdamW moments and step count, the
 * RNG states that decide the data order, the config and the history so far.
 *
 * Layout (little-endian), version 1:
 *   "LABCKPT\n" | u32 version | u32 header bytes H | header JSON (H bytes)
 *   | float32 payload (params, then m, then v, each in model.params name order;
 *     then the objective's state, e.g. LIxP's stale memory, when it has one)
 *   | SHA-256 of everything before it (32 bytes)
 * Files are written atomically (temp + fsync + rename), so a kill leaves either
 * the old file or the new one; the checksum catches what the disk or a person
 * did later. A loader refuses, with the file and the problem in the message,
 * anything truncated, corrupted, of another version or of another config.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describeDifference } from '../config/diff';
import type { Params } from '../model/params';
import { labPath, writeAtomic } from '../paths';
import type { StepRecord } from '../train/loop';
import type { AdamState } from '../train/optim';

export const CHECKPOINT_MAGIC = 'LABCKPT\n';
export const CHECKPOINT_VERSION = 1;
const PREFIX = 16; // magic + version + header length
const SHA_BYTES = 32;

/** A checkpoint that cannot be used; `file` is the path that was refused. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`checkpoint ${file}: ${problem}`);
    this.name = 'CheckpointError';
  }
}

/** What a training run needs to continue exactly where it stopped. */
export interface TrainState {
  step: number; // steps completed
  params: Params;
  adam: AdamState;
  state?: Params; // the objective's state (Model.state), absent or empty for most objectives
  rngs: Record<string, number[]>; // Rng.state() of each stream, by name
  config: unknown;
  history: StepRecord[];
  score?: number; // lower is better; picks the `best` checkpoint
}

interface TensorEntry {
  name: string; // 'param/<n>', 'm/<n>', 'v/<n>' or 'state/<n>'
  shape: number[];
}

interface Header {
  step: number;
  adamT: number;
  rngs: Record<string, Array<number | null>>;
  score: number | null;
  config: unknown;
  history: StepRecord[];
  tensors: TensorEntry[];
  payloadBytes: number;
}

/** A decoded, checksum-verified checkpoint. */
export interface Checkpoint {
  file: string;
  step: number;
  adamT: number;
  rngs: Record<string, number[]>;
  score: number | null;
  config: unknown;
  history: StepRecord[];
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('checkpoints need a little-endian host'); // no byte swapping
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** SHA-256 over the float32 little-endian bytes of each parameter, in name order. */
export function weightsSha256(params: Params): string {
  assertLittleEndian();
  const h = createHash('sha256');
  for (const v of Object.values(params)) h.update(bytesOf(v.dataSync() as Float32Array));
  return h.digest('hex');
}

/** Serialise a training state (params, m, v in the fixed name order). */
export function encodeCheckpoint(s: TrainState): Buffer {
  assertLittleEndian();
  const names = Object.keys(s.params);
  const groups: Array<[string, Record<string, tf.Variable>]> = [
    ['param', s.params],
    ['m', s.adam.m],
    ['v', s.adam.v],
  ];
  const tensors: TensorEntry[] = [];
  const blobs: Buffer[] = [];
  for (const [g, vars] of groups)
    for (const n of names) {
      tensors.push({ name: `${g}/${n}`, shape: vars[n].shape });
      blobs.push(Buffer.from(bytesOf(vars[n].dataSync() as Float32Array)));
    }
  for (const [n, x] of Object.entries(s.state ?? {})) {
    tensors.push({ name: `state/${n}`, shape: x.shape });
    blobs.push(Buffer.from(bytesOf(x.dataSync() as Float32Array)));
  }
  const rngs = Object.fromEntries(
    Object.entries(s.rngs).map(([k, st]) => [k, st.map((x) => (Number.isNaN(x) ? null : x))]),
  );
  const payloadBytes = blobs.reduce((a, b) => a + b.length, 0);
  const header: Header = {
    step: s.step,
    adamT: s.adam.t,
    rngs,
    score: s.score ?? null,
    config: s.config,
    history: s.history,
    tensors,
    payloadBytes,
  };
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(PREFIX);
  prefix.write(CHECKPOINT_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(CHECKPOINT_VERSION, 8);
  prefix.writeUInt32LE(json.length, 12);
  const body = Buffer.concat([prefix, json, ...blobs]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

function parseHeader(buf: Buffer, file: string): Header {
  const bad = (p: string) => new CheckpointError(file, p);
  const magic = buf.toString('latin1', 0, Math.min(8, buf.length));
  if (!CHECKPOINT_MAGIC.startsWith(magic)) throw bad('not a checkpoint (bad magic)');
  if (buf.length < PREFIX + SHA_BYTES) throw bad(`truncated (${buf.length} bytes)`);
  const version = buf.readUInt32LE(8);
  if (version !== CHECKPOINT_VERSION)
    throw bad(`unsupported format version ${version} (this lab reads ${CHECKPOINT_VERSION})`);
  const H = buf.readUInt32LE(12);
  if (PREFIX + H + SHA_BYTES > buf.length)
    throw bad(`truncated (${buf.length} bytes, header alone needs ${PREFIX + H + SHA_BYTES})`);
  let header: Header;
  try {
    header = JSON.parse(buf.toString('utf8', PREFIX, PREFIX + H));
  } catch {
    throw bad('corrupted (header is not valid JSON)');
  }
  const expected = PREFIX + H + header.payloadBytes + SHA_BYTES;
  if (!Number.isInteger(expected)) throw bad('corrupted (bad header)');
  if (buf.length < expected) throw bad(`truncated (${buf.length} bytes, expected ${expected})`);
  if (buf.length > expected) throw bad(`corrupted (${buf.length} bytes, expected ${expected})`);
  return header;
}

/** Decode and verify a checkpoint's bytes; `file` is only for messages. */
export function decodeCheckpoint(buf: Buffer, file: string): Checkpoint {
  assertLittleEndian();
  const header = parseHeader(buf, file);
  const body = buf.subarray(0, buf.length - SHA_BYTES);
  const sha = createHash('sha256').update(body).digest();
  if (!sha.equals(buf.subarray(buf.length - SHA_BYTES)))
    throw new CheckpointError(file, 'corrupted (SHA-256 checksum mismatch)');
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let off = PREFIX + buf.readUInt32LE(12);
  for (const t of header.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    // copy: a Float32Array view needs 4-byte alignment, which the header length does not give
    const data = new Float32Array(new Uint8Array(buf.subarray(off, off + 4 * n)).buffer);
    tensors.set(t.name, { shape: t.shape, data });
    off += 4 * n;
  }
  const rngs = Object.fromEntries(
    Object.entries(header.rngs).map(([k, st]) => [k, st.map((x) => (x === null ? Number.NaN : x))]),
  );
  const { step, adamT, score, config, history } = header;
  return { file, step, adamT, rngs, score, config, history, tensors };
}

/** Read, verify and (when `config` is given) check a checkpoint against a run's config. */
export function readCheckpoint(file: string, config?: unknown): Checkpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read (${(e as Error).message})`);
  }
  const ck = decodeCheckpoint(buf, file);
  const diff =
    config === undefined ? null : describeDifference(ck.config, config, 'checkpoint', 'this run');
  if (diff) throw new CheckpointError(file, `config mismatch ${diff}`);
  return ck;
}

/**
 * Copy a checkpoint's params, AdamW state and the objective's state into live
 * variables (names and shapes must match).
 */
export function restoreCheckpoint(
  ck: Checkpoint,
  params: Params,
  adam: AdamState,
  state: Params = {},
): void {
  const groups: Array<[string, Record<string, tf.Variable>, string[]]> = [
    ['param', params, Object.keys(params)],
    ['m', adam.m, Object.keys(params)],
    ['v', adam.v, Object.keys(params)],
    ['state', state, Object.keys(state)],
  ];
  for (const [g, vars, names] of groups)
    for (const n of names) {
      const t = ck.tensors.get(`${g}/${n}`);
      if (!t) throw new CheckpointError(ck.file, `missing tensor '${g}/${n}'`);
      if (t.shape.join() !== vars[n].shape.join())
        throw new CheckpointError(
          ck.file,
          `tensor '${g}/${n}' has shape [${t.shape}], the model expects [${vars[n].shape}]`,
        );
      tf.tidy(() => vars[n].assign(tf.tensor(t.data, t.shape)));
    }
  adam.t = ck.adamT;
}

const CKPT_RE = /^ckpt-(\d+)\.bin$/;
export const BEST_FILE = 'best.bin';

/** Checkpoint files of a folder, newest step first (best.bin last: it may be old). */
export function listCheckpoints(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const steps = fs
    .readdirSync(dir)
    .filter((f) => CKPT_RE.test(f))
    .sort((a, b) => Number(CKPT_RE.exec(b)?.[1]) - Number(CKPT_RE.exec(a)?.[1]));
  if (fs.existsSync(path.join(dir, BEST_FILE))) steps.push(BEST_FILE);
  return steps.map((f) => path.join(dir, f));
}

/**
 * The newest usable checkpoint of `dir`, or null when there is none at all. A bad
 * file is skipped with a warning naming it when an older one works; when every
 * file is bad, the newest file's error is thrown.
 */
export function loadLatestCheckpoint(
  dir: string,
  config: unknown,
  warn: (msg: string) => void = console.warn,
): Checkpoint | null {
  const files = listCheckpoints(dir);
  const errors: CheckpointError[] = [];
  let best: Checkpoint | null = null;
  for (const f of files) {
    try {
      const ck = readCheckpoint(f, config);
      if (!best || ck.step > best.step) best = ck;
      if (path.basename(f) !== BEST_FILE) break; // the newest good numbered one wins
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      errors.push(e);
    }
  }
  if (!best && errors.length > 0) throw errors[0];
  for (const e of errors)
    if (best) warn(`warning: skipping bad ${e.message}; resuming from ${best.file}`);
  return best;
}

/** Writes numbered checkpoints into one folder, keeping the last `keepLast` and the best. */
export class CheckpointWriter {
  private bestScore = Number.POSITIVE_INFINITY;

  constructor(
    readonly dir: string,
    readonly keepLast = 3,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(dir)) // temp files of a write that a kill interrupted
      if (f.includes('.tmp-')) fs.rmSync(path.join(dir, f), { force: true });
    const best = path.join(dir, BEST_FILE);
    try {
      this.bestScore = decodeCheckpoint(fs.readFileSync(best), best).score ?? this.bestScore;
    } catch {
      // no best yet, or a bad one: the next save replaces it
    }
  }

  /** Save `s` as ckpt-<step>.bin (and best.bin if its score is the lowest); returns the path. */
  save(s: TrainState): string {
    const bytes = encodeCheckpoint(s);
    const file = path.join(this.dir, `ckpt-${String(s.step).padStart(8, '0')}.bin`);
    writeAtomic(file, bytes, { fsync: true });
    if (s.score !== undefined && s.score < this.bestScore) {
      this.bestScore = s.score;
      writeAtomic(path.join(this.dir, BEST_FILE), bytes, { fsync: true });
    }
    this.syncDir();
    for (const old of listCheckpoints(this.dir)
      .filter((f) => CKPT_RE.test(path.basename(f)))
      .slice(this.keepLast))
      fs.rmSync(old, { force: true });
    return file;
  }

  /** fsync the folder so the renames survive a power cut, not only a kill. */
  private syncDir(): void {
    try {
      const fd = fs.openSync(this.dir, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch {} // some filesystems refuse fsync on a directory; the rename is still atomic
  }
}

/** The numbered checkpoints of `dir` written by a run of `config` (others skipped), oldest first. */
function checkpointsOf(dir: string, config: unknown): Checkpoint[] {
  const files = listCheckpoints(labPath(dir)).filter((f) => CKPT_RE.test(path.basename(f)));
  const out: Checkpoint[] = [];
  for (const f of files.reverse()) {
    try {
      out.push(readCheckpoint(f, config)); // a leftover of another run's config throws
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
    }
  }
  return out;
}

/**
 * `fn(step)` with the weights of each numbered checkpoint in `dir` that a run of
 * `config` wrote, oldest first, loaded into `params` in turn; the live weights
 * are put back afterwards (also when `fn` throws).
 */
export function atCheckpoints<T>(
  params: Params,
  dir: string,
  config: unknown,
  fn: (step: number) => T,
): T[] {
  const saved = Object.fromEntries(Object.entries(params).map(([n, v]) => [n, tf.clone(v)]));
  try {
    return checkpointsOf(dir, config).map((ck) => {
      for (const [n, v] of Object.entries(params)) {
        const t = ck.tensors.get(`param/${n}`);
        if (!t) throw new CheckpointError(ck.file, `no parameter '${n}'`);
        tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
      }
      return fn(ck.step);
    });
  } finally {
    for (const [n, v] of Object.entries(params)) v.assign(saved[n]);
    tf.dispose(Object.values(saved));
  }
}
