/**
 * Stock wasm vs native OpenBLAS kernels, same process, median ms after warm-up.
 * Run: node --import tsx bench/matmul.ts [reps]. Used to pick DEFAULT_THREADS
 * in lib/backend.ts (set LAB_THREADS to try others).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/backend/index';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';

const reps = Number(process.argv[2] ?? 7);

/**
 * Median ms per config. Configs are interleaved round by round, so load from
 * other processes on this shared 2-core box hits all of them alike.
 */
function medians(run: () => void, configs: (() => void)[]): number[] {
  const times: number[][] = configs.map(() => []);
  for (let r = -1; r < reps; r++) {
    configs.forEach((setup, i) => {
      setup();
      const t0 = performance.now();
      run();
      if (r >= 0) times[i].push(performance.now() - t0); // round -1 is warm-up
    });
  }
  return times.map((ts) => ts.sort((p, q) => p - q)[Math.floor(reps / 2)]);
}

/**
 * Runs `f` in a tidy. The wasm backend is synchronous, so the work is done on
 * return; reading big results back (dataSync) would add tens of ms of copies.
 */
function timed(f: () => tf.Tensor): () => void {
  return () => tf.tidy(() => void f());
}

function workloads(): Record<string, () => void> {
  const x = tf.randomNormal([8192, 128]);
  const w = tf.randomNormal([128, 512]);
  const dy = tf.randomNormal([8192, 512]);
  const q = tf.randomNormal([128, 128, 32]);
  const w1 = tf.variable(tf.randomNormal([128, 512], 0, 0.1));
  const w2 = tf.variable(tf.randomNormal([512, 128], 0, 0.1));
  const b1 = tf.variable(tf.zeros([512]));
  const mlp = () => {
    const h = tf.fused.matMul({ a: x, b: w1, bias: b1, activation: 'relu' });
    return tf.matMul(h, w2).square().mean() as tf.Scalar;
  };
  return {
    'matmul [8192,128]x[128,512]': timed(() => tf.matMul(x, w)),
    'Xt.dY [8192,128]^T x [8192,512]': timed(() => tf.matMul(x, dy, true, false)),
    'dY.Wt [8192,512] x [128,512]^T': timed(() => tf.matMul(dy, w, false, true)),
    'attention [128,128,32]x[128,128,32]^T': timed(() => tf.matMul(q, q, false, true)),
    'sum axis 0 of [8192,512]': timed(() => tf.sum(dy, 0)),
    'MLP relu fwd+bwd 8192x128-512-128': timed(() => {
      const { grads } = tf.variableGrads(mlp);
      return tf.addN(Object.values(grads).map((g) => g.sum()));
    }),
  };
}

async function main(): Promise<void> {
  await initBackend({ force: 'wasm' });
  const runs = workloads();
  const configs: [string, () => void][] = [
    ['stock', restoreStockKernels],
    ['native 1t', () => registerNativeKernels(1)],
    ['native 2t', () => registerNativeKernels(2)],
  ];
  console.log(['workload', ...configs.map(([name]) => name)].join(' | '));
  for (const [label, run] of Object.entries(runs)) {
    const ms = medians(
      run,
      configs.map(([, setup]) => setup),
    );
    console.log([label, ...ms.map((t) => t.toFixed(1))].join(' | '));
  }
}

main();
