/**
 * Lab vs PyTorch on one model: same initial weights, same batches, same AdamW
 * schedule; steps alternate lab / PyTorch 1 thread / PyTorch 2 threads round by
 * round (rotating who goes first) so load from other processes hits all alike.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { World } from '../lib/data/world';
import { disposeParams } from '../lib/model/index';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { labStep } from './profile';
import {
  type BenchCase,
  benchModel,
  benchOptim,
  fixedBatches,
  stepFlops,
  writeShared,
} from './setup';
import type { StepTimes, TorchServer } from './torch';

export const PEAK_GFLOPS = 235;
/** Loss agreement after the same steps: |lab − torch| ≤ ABS + REL·|torch|. */
const LOSS_ABS = 0.02;
const LOSS_REL = 0.01;

export interface Plan {
  warmup: number; // steps per side before timing
  rounds: number;
  perRound: number; // steps per side per round
}

export interface SideResult {
  name: string;
  msPerStep: number; // median wall time over timed steps
  ms: number[];
  cpuMsPerStep: number; // median CPU time (all threads): robust to load from other processes
  cpuMs: number[];
  gflops: number;
  peakFraction: number;
  losses: number[];
}

export interface CaseResult {
  key: string;
  label: string;
  gflopPerStep: number;
  steps: number;
  sides: SideResult[];
  ratioToBestTorch: number;
  cpuRatioToTorch1: number; // lab CPU ms / PyTorch 1-thread CPU ms: the load-robust ratio
  loss: { lab: number; torch1: number; torch2: number; maxAbsDiff: number; ok: boolean };
  memory: { labRssMiB: number; wasmHeapMiB: number; tfBytesMiB: number; torchRssMiB?: number };
}

type Runner = (from: number, to: number) => Promise<StepTimes>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function labRunner(c: BenchCase, world: World, total: number) {
  const model = benchModel(c, world);
  const batches = fixedBatches(world, c.batch, 2);
  const adam = createAdamState(model.params);
  const optim = benchOptim();
  const run: Runner = async (from, to) => {
    const [ms, cpuMs, loss]: number[][] = [[], [], []];
    for (let s = from; s < to; s++) {
      const [t0, c0] = [performance.now(), process.cpuUsage()];
      loss.push(labStep(model, batches[s % batches.length], adam, s, total, optim));
      ms.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpuMs.push((c.user + c.system) / 1000);
    }
    return { ms, cpuMs, loss };
  };
  const dispose = () => {
    disposeAdamState(adam);
    disposeParams(model.params);
  };
  return { model, batches, run, dispose };
}

/** Bytes of the wasm heap (it only grows), or 0 on another backend. */
function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPF32: Float32Array } };
  return b.wasm ? b.wasm.HEAPF32.buffer.byteLength : 0;
}

export async function compareCase(
  c: BenchCase,
  world: World,
  torch: TorchServer,
  plan: Plan,
): Promise<CaseResult> {
  const total = plan.warmup + plan.rounds * plan.perRound;
  const lab = labRunner(c, world, total);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lab-bench-${c.key}-`));
  writeShared(dir, c, lab.model, lab.batches, total);
  await torch.load(c.key, dir, [1, 2]);
  fs.rmSync(dir, { recursive: true, force: true });
  const runners: [string, Runner][] = [
    ['lab', lab.run],
    ['PyTorch 1 thread', (f, t) => torch.steps(c.key, 1, f, t)],
    ['PyTorch 2 threads', (f, t) => torch.steps(c.key, 2, f, t)],
  ];
  const ms: number[][] = runners.map(() => []);
  const cpu: number[][] = runners.map(() => []);
  const losses: number[][] = runners.map(() => []);
  for (let r = -1; r < plan.rounds; r++) {
    const from = r < 0 ? 0 : plan.warmup + r * plan.perRound;
    const to = r < 0 ? plan.warmup : from + plan.perRound;
    for (let j = 0; j < runners.length; j++) {
      const i = (j + Math.max(r, 0)) % runners.length;
      const out = await runners[i][1](from, to);
      if (r >= 0) ms[i].push(...out.ms);
      if (r >= 0) cpu[i].push(...out.cpuMs);
      losses[i].push(...out.loss);
    }
    process.stdout.write(`  ${c.key}: round ${r + 2}/${plan.rounds + 1}\r`);
  }
  const memory = {
    labRssMiB: process.resourceUsage().maxRSS / 1024,
    wasmHeapMiB: wasmHeapBytes() / 2 ** 20,
    tfBytesMiB: tf.memory().numBytes / 2 ** 20,
  };
  lab.dispose();
  const names = runners.map(([name]) => name);
  return summarize(c, names, { ms, cpu, losses }, total, memory);
}

function summarize(
  c: BenchCase,
  names: string[],
  times: { ms: number[][]; cpu: number[][]; losses: number[][] },
  steps: number,
  memory: CaseResult['memory'],
): CaseResult {
  const { ms, cpu, losses } = times;
  const flops = stepFlops(c.model, c.batch);
  const sides = names.map((name, i) => {
    const msPerStep = median(ms[i]);
    const gflops = flops / 1e9 / (msPerStep / 1000);
    return {
      name,
      msPerStep,
      ms: ms[i],
      cpuMsPerStep: median(cpu[i]),
      cpuMs: cpu[i],
      gflops,
      peakFraction: gflops / PEAK_GFLOPS,
      losses: losses[i],
    };
  });
  const [labL, t1, t2] = losses;
  let maxAbsDiff = 0;
  let ok = true;
  for (const t of [t1, t2]) {
    labL.forEach((l, s) => {
      const d = Math.abs(l - t[s]);
      maxAbsDiff = Math.max(maxAbsDiff, d);
      if (!(d <= LOSS_ABS + LOSS_REL * Math.abs(t[s]))) ok = false;
    });
  }
  const best = Math.min(sides[1].msPerStep, sides[2].msPerStep);
  return {
    key: c.key,
    label: c.label,
    gflopPerStep: flops / 1e9,
    steps,
    sides,
    ratioToBestTorch: sides[0].msPerStep / best,
    cpuRatioToTorch1: sides[0].cpuMsPerStep / sides[1].cpuMsPerStep,
    loss: { lab: labL.at(-1)!, torch1: t1.at(-1)!, torch2: t2.at(-1)!, maxAbsDiff, ok },
    memory,
  };
}
