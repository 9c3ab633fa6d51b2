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
import { type ObjectiveConfig, objectiveDefaults } from '../lib/objectives/index';
import type { LlipConfig } from '../lib/objectives/llip';
import { createModel, type Model } from '../lib/objectives/model';
import { Rng } from '../lib/rng';
import { defaultOptim, type OptimConfig } from '../lib/train/optim';

export interface BenchCase {
  key: string; // 'lab-siglip', 'lab-llip', 'issue-siglip', 'smoke-clip', …
  label: string; // the model
  model: ModelConfig; // the towers (the objective adds Llip's mixture tokens)
  objective: ObjectiveConfig;
  batch: number;
}

/** Llip's K in the bench (issue 14: a Llip training step at K = 32). */
export const LLIP_K = 32;

/** The objectives the bench trains, as the lab configures them: LIxP with the paper's switches (α = 0.9). */
export function benchObjectives(smoke: boolean): ObjectiveConfig[] {
  return [
    objectiveDefaults('siglip'),
    objectiveDefaults('clip'),
    objectiveDefaults('lixp'),
    { ...(objectiveDefaults('llip') as LlipConfig), mixtureTokens: smoke ? 4 : LLIP_K },
  ];
}

/** One line per objective for the tables: its name and what is set. */
export function objectiveLabel(o: ObjectiveConfig): string {
  if (o.name === 'lixp') return `LIxP (α = ${o.alpha}, paper switches)`;
  if (o.name === 'llip') return `Llip (K = ${o.mixtureTokens}, ${o.heads} heads, τ = ${o.tau})`;
  return o.name === 'clip' ? 'CLIP' : 'SigLIP';
}

/**
 * Every objective on the `lab` preset, then SigLIP on the issue's model (the
 * largest last: the lab's RSS and wasm heap only grow); a tiny model for smoke runs.
 */
export function benchCases(world: World, smoke: boolean): BenchCase[] {
  const each = (key: string, label: string, model: ModelConfig, batch: number) =>
    benchObjectives(smoke).map((objective) => ({
      key: `${key}-${objective.name}`,
      label,
      model,
      objective,
      batch,
    }));
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
    return each('smoke', 'smoke (patch 8, width 32, 1+1 layers, batch 32)', model, 32);
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
    ...each(
      'lab',
      '`lab` preset (patch 8, width 64, 2+2 layers, batch 256)',
      labModel,
      lab.batchSize,
    ),
    {
      key: 'issue-siglip',
      label: 'issue model (patch 4, width 128, 4+2 layers, batch 256)',
      model: issue,
      objective: objectiveDefaults('siglip'),
      batch: 256,
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
  return createModel(c.model, c.objective, world.tokenizer.END, 0);
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
    model: model.config, // the towers as built: Llip's mixture tokens filled in
    objective: model.objective,
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
 * analytically; the token embedding counts as a lookup (0), as in PyTorch. The
 * objective decides what the image tower computes (Llip: K more tokens, no
 * pooling or image head) and adds its own products.
 */
export function stepFlops(m: ModelConfig, B: number, o: ObjectiveConfig): number {
  const im = m.image;
  const patches = (im.imageSize / im.patch) ** 2;
  const K = o.name === 'llip' ? o.mixtureTokens : 0;
  const tokens = patches + (im.pool === 'cls' ? 1 : 0) + im.registers + K;
  const D = im.width;
  const E = m.embedDim;
  let fwd = 2 * B * patches * im.patch * im.patch * 3 * D; // patch embedding
  fwd += im.depth * blockFlops(B * tokens, tokens, D, im.mlpRatio);
  if (o.name !== 'llip') {
    if (im.pool === 'map')
      fwd += 2 * B * patches * D * 2 * D + 2 * 2 * B * patches * D + 2 * B * D * D; // MAP: kv, scores + pooling, proj
    fwd += 2 * B * D * E; // image head
  }
  const tx = m.text;
  const L = tx.contextLength;
  fwd += tx.depth * blockFlops(B * L, L, tx.width, tx.mlpRatio);
  fwd += 2 * B * tx.width * E; // text head
  const pairs = 2 * B * B * E; // one B×B matrix of dot products at width E
  if (o.name === 'lixp')
    fwd += 4 * pairs; // base logits, x̄x̄ᵀ, A·X, contextual logits
  else if (o.name === 'llip') {
    fwd += 2 * 2 * B * K * D * E + 2 * B * tx.width * E; // per-token keys and values, queries
    fwd += 2 * K * pairs + B * B * 2 * E * E + pairs; // Q·K, Φ·V, W_O per pair, cosines
  } else fwd += pairs;
  return 3 * fwd;
}
