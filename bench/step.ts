/**
 * Quick timer of one training step on random data, for before/after comparisons
 * of backend changes (`npm run bench` is the full comparison against PyTorch).
 *
 *   CFG=patch,width,depth,batch,textWidth,textDepth node --import tsx bench/step.ts
 *   LAB_NATIVE=0 CFG=8,64,2,256,64,2 node --import tsx bench/step.ts   # stock wasm
 */

import { initBackend } from '../lib/backend/index';
import { createModel, defaultOptim, trainLoop } from '../lib/index';
import { Rng } from '../lib/rng';

async function main() {
  await initBackend();
  const [patch, width, depth, B, tw, td] = (process.env.CFG ?? '8,64,2,256,64,2')
    .split(',')
    .map(Number);
  const L = 16;
  const cfg = {
    image: {
      imageSize: 32,
      patch,
      width,
      depth,
      heads: 4,
      mlpRatio: 4,
      pool: 'map' as const,
      registers: 0,
    },
    text: { vocabSize: 120, contextLength: L, width: tw, depth: td, heads: 4, mlpRatio: 4 },
    embedDim: 64,
  };
  const model = createModel(cfg, 'siglip', 1, 0);
  const rng = new Rng(1);
  const images = Float32Array.from({ length: B * 3072 }, () => rng.uniform());
  const tokens = new Int32Array(B * L).map((_, i) =>
    i % L === 10 ? 1 : i % L > 10 ? 0 : 3 + rng.int(100),
  );
  const batch = { images, tokens, captions: [], size: B };
  const { history } = trainLoop(model, {
    steps: 8,
    optim: defaultOptim,
    nextBatch: () => batch,
    quiet: true,
  });
  const ms = history
    .slice(3)
    .map((h) => (B / h.examplesPerSec) * 1000)
    .sort((a, b) => a - b);
  console.log(
    `CFG=${process.env.CFG ?? '8,64,2,256,64,2'} median ms/step ${ms[Math.floor(ms.length / 2)].toFixed(0)}`,
  );
}

main();
