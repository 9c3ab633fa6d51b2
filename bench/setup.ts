/**
 * What both sides of the benchmark train: model configs, a fixed set of batches
 * from the lab's world, initial weights from the lab's seeded init, and the
 * files the PyTorch side reads (params.bin, images.bin, tokens.bin, manifest.json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeConfig } from '../lib/config/presets';
import type { Batch } from '../lib/data/types';
import type { World } from '../lib/data/world';
import type { ModelConfig } from '../lib/model/index';
import { createModel, type Model } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import { defaultOptim, type OptimConfig } from '../lib/train/optim';

export interface BenchCase {
  key: string; // 'issue' | 'lab' | 'smoke'
  label: string;
  model: ModelConfig;
  batch: number;
}

/** Sizes of the issue's model, the `lab` preset, and a tiny one for smoke runs. */
export function benchCases(world: World, smoke: boolean): BenchCase[] {
  const tok = world.tokenizer;
  const text = (w: number, depth: number, heads: number) => ({
    width: w,
    depth,
    heads,
    mlpRatio: 4,
    vocabSize: tok.vocab.length,
    contextLength: tok.contextLength,
  });
  const image = { imageSize: 32, pool: 'map' as const, registers: 0, mlpRatio: 4 };
  if (smoke) {
    const model = {
      image: { ...image, patch: 8, width: 32, depth: 1, heads: 2 },
      text: text(32, 1, 2),
      embedDim: 32,
    };
    return [
      { key: 'smoke', label: 'smoke (patch 8, width 32, 1+1 layers, batch 32)', model, batch: 32 },
    ];
  }
  const issue = {
    image: { ...image, patch: 4, width: 128, depth: 4, heads: 4 },
    text: text(128, 2, 4),
    embedDim: 128,
  };
  const lab = makeConfig('lab');
  const labModel = {
    image: lab.model.image,
    text: { ...lab.model.text, vocabSize: tok.vocab.length, contextLength: tok.contextLength },
    embedDim: lab.model.embedDim,
  };
  return [
    {
      key: 'issue',
      label: 'issue model (patch 4, width 128, 4+2 layers, batch 256)',
      model: issue,
      batch: 256,
    },
    {
      key: 'lab',
      label: '`lab` preset (patch 8, width 64, 2+2 layers, batch 256)',
      model: labModel,
      batch: lab.batchSize,
    },
  ];
}

/** AdamW as the lab trains, with a short warmup so the loss moves within the bench's steps. */
export function benchOptim(): OptimConfig {
  return { ...defaultOptim, lr: 1e-3, warmupSteps: 2 };
}

/** `count` batches drawn from the world with a fixed seed; both sides cycle through them. */
export function fixedBatches(world: World, size: number, count: number): Batch[] {
  const rng = new Rng(1234);
  return Array.from({ length: count }, () => world.sampleBatch(rng, size));
}

export function benchModel(c: BenchCase, world: World): Model {
  return createModel(c.model, 'siglip', world.tokenizer.END, 0);
}

/** Writes the model's initial weights, the batches and the optimizer for torch_bench.py. */
export function writeShared(
  dir: string,
  c: BenchCase,
  model: Model,
  batches: Batch[],
  totalSteps: number,
): void {
  fs.mkdirSync(dir, { recursive: true });
  const params: Record<string, [number, number[]]> = {};
  const chunks: Float32Array[] = [];
  let off = 0;
  for (const [name, v] of Object.entries(model.params)) {
    params[name] = [off, v.shape];
    chunks.push(v.dataSync() as Float32Array);
    off += v.size;
  }
  const write = (file: string, parts: ArrayBufferView[]) =>
    fs.writeFileSync(path.join(dir, file), Buffer.concat(parts.map((p) => bytesOf(p))));
  write('params.bin', chunks);
  write(
    'images.bin',
    batches.map((b) => b.images),
  );
  write(
    'tokens.bin',
    batches.map((b) => b.tokens),
  );
  const decay = Object.keys(model.specs).filter((n) => model.specs[n].decay);
  const manifest = {
    model: c.model,
    optim: benchOptim(),
    totalSteps,
    batch: c.batch,
    numBatches: batches.length,
    params,
    decay,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
}

function bytesOf(v: ArrayBufferView): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Forward FLOPs of one transformer block over n tokens of width d (sequences of t tokens). */
function blockFlops(n: number, t: number, d: number, ratio: number): number {
  const dense = 2 * n * d * (3 * d + d + 2 * ratio * d); // qkv, proj, fc1, fc2
  const attention = 2 * 2 * n * t * d; // q·kᵀ and a·v
  return dense + attention;
}

/**
 * Matmul FLOPs of one training step (forward + backward = 3 × forward), counted
 * analytically; the token embedding counts as a lookup (0), as in PyTorch.
 */
export function stepFlops(m: ModelConfig, B: number): number {
  const im = m.image;
  const tokens = (im.imageSize / im.patch) ** 2;
  const D = im.width;
  let fwd = 2 * B * tokens * im.patch * im.patch * 3 * D; // patch embedding
  fwd += im.depth * blockFlops(B * tokens, tokens, D, im.mlpRatio);
  fwd += 2 * B * tokens * D * 2 * D + 2 * 2 * B * tokens * D; // MAP: kv projection, scores, pooling
  fwd += 2 * B * D * D + 2 * B * D * m.embedDim; // MAP proj, head
  const tx = m.text;
  const L = tx.contextLength;
  fwd += tx.depth * blockFlops(B * L, L, tx.width, tx.mlpRatio);
  fwd += 2 * B * tx.width * m.embedDim + 2 * B * B * m.embedDim; // head, pair logits
  return 3 * fwd;
}
