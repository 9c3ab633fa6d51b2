/**
 * The matmul floor of a training step: how fast the lab's step could be if
 * everything but its matrix products were free.
 *
 *   node --import tsx bench/floor.ts [lab-siglip issue-siglip …] [--reps 7]
 *
 * One step of each bench case runs under `tf.profile`, with the whole-block
 * kernel off (it runs the same products inside one call, whose shapes the
 * profile does not show); every product in it is read off the kernels' shapes (dense layers both ways, BatchMatMul, and the
 * six batched products inside each attention block's two kernels), then each
 * distinct product is replayed alone through the native sgemm at 1 and 2
 * threads, the settings alternating round by round, median of `reps` after a
 * warm-up. The floor is Σ calls × median. Everything else in the step (layer
 * norms, GELU, softmax, the loss, AdamW, the engine) is left out, so the floor
 * is below any step the lab can run; BatchMatMul's transposes are not in the
 * profile and replay as plain products.
 *
 * Issue 17 asks for a lab step ≤ 0.5× PyTorch's: when half of PyTorch's step is
 * below this floor, no cut outside the matmuls can reach it.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/backend/index';
import { registerNativeKernels, restoreStockKernels } from '../lib/backend/native';
import { createWorld } from '../lib/data/world';
import { createAdamState } from '../lib/train/optim';
import { labStep } from './profile';
import { benchCases, benchModel, benchOptim, fixedBatches } from './setup';

/** c[batch, m, n] = op(a)[batch, m, k] · op(b)[batch, k, n]. */
export interface Product {
  batch: number;
  m: number;
  n: number;
  k: number;
  ta: boolean;
  tb: boolean;
}

type Shapes = { name: string; inputShapes: number[][]; outputShapes: number[][] };

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const plain = (batch: number, m: number, n: number, k: number): Product => ({
  batch,
  m,
  n,
  k,
  ta: false,
  tb: false,
});

/** The products one kernel call runs, from its input and output shapes ([] for other kernels). */
export function productsOf(kernel: Shapes): Product[] {
  const [a, b] = kernel.inputShapes;
  const out = kernel.outputShapes[0];
  switch (kernel.name) {
    case 'LabBlock':
    case 'LabBlockGrad':
      throw new Error(
        `${kernel.name}: its products are not in the profile; profile with the block kernel off`,
      );
    case 'LabDense': // y[N, Dout] = x[N, Din] · w[Din, Dout]
      return [plain(1, a[0], b[1], a[1])];
    case 'LabDenseGrad': {
      // dx = dy · wᵀ, dw = xᵀ · dy; inputs dy [N, Dout], x [N, Din]
      const [n, dout] = a;
      const din = b[1];
      return [
        { batch: 1, m: n, n: din, k: dout, ta: false, tb: true },
        { batch: 1, m: din, n: dout, k: n, ta: true, tb: false },
      ];
    }
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const m = out[out.length - 2];
      const n = out[out.length - 1];
      const batch = size(out) / (m * n);
      const k = (a[a.length - 1] * a[a.length - 2]) / m;
      return [plain(batch, m, n, k)];
    }
    case 'LabAttention':
    case 'LabAttentionGrad': {
      // forward outputs: out [B·T, D], probs [B·H, T, T]; the gradient's inputs: dy, qkv, probs
      const probs = kernel.name === 'LabAttention' ? kernel.outputShapes[1] : kernel.inputShapes[2];
      const rows = kernel.name === 'LabAttention' ? out[0] : a[0];
      const d = (kernel.name === 'LabAttention' ? kernel.inputShapes[0][1] : b[1]) / 3;
      const [bh, t] = probs;
      const dh = d / (bh / (rows / t));
      if (kernel.name === 'LabAttention') return [plain(bh, t, t, dh), plain(bh, t, dh, t)]; // Q·Kᵀ, P·V
      return [plain(bh, t, t, dh), plain(bh, t, dh, t), plain(bh, t, dh, t), plain(bh, t, dh, t)]; // dP, dV, dQ, dK
    }
    default:
      return [];
  }
}

const key = (p: Product) =>
  `${p.batch}×[${p.m},${p.k}]·[${p.k},${p.n}]${p.ta ? ' Aᵀ' : ''}${p.tb ? ' Bᵀ' : ''}`;

/** The step's products, counted by distinct shape. */
export function stepProducts(kernels: Shapes[]): { product: Product; calls: number }[] {
  const byKey = new Map<string, { product: Product; calls: number }>();
  for (const k of kernels)
    for (const p of productsOf(k)) {
      const e = byKey.get(key(p)) ?? { product: p, calls: 0 };
      e.calls++;
      byKey.set(key(p), e);
    }
  return [...byKey.values()];
}

/** Median ms of one product at each thread count, the settings alternating round by round. */
function timeProduct(p: Product, threads: number[], reps: number): number[] {
  const aShape = p.ta ? [p.batch, p.k, p.m] : [p.batch, p.m, p.k];
  const bShape = p.tb ? [p.batch, p.n, p.k] : [p.batch, p.k, p.n];
  const a = tf.randomNormal(aShape);
  const b = tf.randomNormal(bShape);
  const times: number[][] = threads.map(() => []);
  for (let r = -1; r < reps; r++)
    threads.forEach((n, i) => {
      registerNativeKernels(n);
      const t0 = performance.now();
      tf.tidy(() => void tf.matMul(a, b, p.ta, p.tb));
      if (r >= 0) times[i].push(performance.now() - t0);
    });
  tf.dispose([a, b]);
  return times.map((ts) => ts.sort((x, y) => x - y)[Math.floor(ts.length / 2)]);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const r = args.indexOf('--reps');
  const reps = r >= 0 ? Number(args.splice(r, 2)[1]) : 7;
  const which = args.length ? args : ['lab-siglip', 'issue-siglip'];
  await initBackend();
  const world = createWorld({ trainScenes: 300, valScenes: 64, testScenes: 64 });
  const threads = [1, 2];
  for (const c of benchCases(world, false).filter((c) => which.includes(c.key))) {
    const model = benchModel(c, world);
    const [batch] = fixedBatches(world, c.batch, 1);
    const adam = createAdamState(model.params);
    let i = 0;
    const step = () => labStep(model, batch, adam, ++i, 100, benchOptim());
    restoreStockKernels();
    registerNativeKernels(1, { block: false });
    for (let w = 0; w < 2; w++) step();
    const info = await tf.profile(() => {
      step();
      return tf.scalar(0);
    });
    tf.dispose(info.result as tf.Tensor);
    restoreStockKernels();
    registerNativeKernels(1);
    const products = stepProducts(info.kernels as unknown as Shapes[]);
    console.log(`\n${c.key}: ${c.label}, ${c.objective.name}, batch ${c.batch}`);
    console.log('| product | calls | GFLOP | ms 1 thread | ms 2 threads |');
    console.log('|---|---|---|---|---|');
    const total = threads.map(() => 0);
    let flops = 0;
    for (const { product: p, calls } of products) {
      const ms = timeProduct(p, threads, reps);
      const gflop = (2 * p.batch * p.m * p.n * p.k * calls) / 1e9;
      flops += gflop;
      ms.forEach((t, j) => {
        total[j] += t * calls;
      });
      console.log(
        `| ${key(p)} | ${calls} | ${gflop.toFixed(3)} | ${ms.map((t) => (t * calls).toFixed(1)).join(' | ')} |`,
      );
    }
    const rate = total.map((t) => (flops / t) * 1e3);
    console.log(
      `| **matmul floor** | | ${flops.toFixed(2)} | ${total[0].toFixed(1)} (${rate[0].toFixed(0)} GFLOP/s) | ${total[1].toFixed(1)} (${rate[1].toFixed(0)} GFLOP/s) |`,
    );
    registerNativeKernels(1);
  }
}

if (require.main === module) main();
