/**
 * Lab vs PyTorch on one model and objective: same initial weights, same
 * batches, same AdamW schedule; steps alternate the lab at each thread count
 * (1 and every core) / each PyTorch setup (1 and 2 threads, BLAS pins as set
 * and unset) round by round, rotating who goes first, so load from other
 * processes hits all alike. Each side at its fastest: the lab's fastest
 * thread count against the fastest PyTorch setup (the yardstick); every
 * side's losses must agree with the lab's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setNativeThreads } from '../lib/backend/native';
import type { World } from '../lib/data/world';
import { disposeParams } from '../lib/model/index';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { labStep, peakTensorBytes } from './profile';
import {
  type BenchCase,
  benchModel,
  benchOptim,
  fixedBatches,
  objectiveLabel,
  stepFlops,
  writeShared,
} from './setup';
import { type StepTimes, setupName, type TorchServer, type TorchSetup } from './torch';

export const PEAK_GFLOPS = 235;
/**
 * Idle time before each side's steps, so that the side before has stopped
 * spinning: OpenMP's workers (the lab's, and PyTorch's at 2 threads, at
 * libgomp's default spin) keep a core busy for ~11 ms after their last
 * parallel region here (measured), time that would otherwise land on the
 * next side's step.
 */
const GAP_MS = 50;
const idle = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Loss agreement after the same steps: |lab − torch| ≤ ABS + REL·|torch|. */
const LOSS_ABS = 0.02;
const LOSS_REL = 0.01;

export interface Plan {
  warmup: number; // steps per side before timing
  rounds: number;
  perRound: number; // timed steps per side per round
  settle: number; // untimed steps per side at the start of each round (see compareCase)
}

export interface SideResult {
  name: string;
  labThreads?: number; // lab sides: the thread count it ran with
  setup?: TorchSetup; // PyTorch sides
  parallelism: number; // median CPU ms / wall ms per step: the threads it really used
  /** peak memory: PyTorch its process's peak RSS over this case; the lab its process's (it only grows) */
  peakRssMiB: number;
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
  label: string; // the model
  objective: string; // the objective, for tables
  gflopPerStep: number;
  steps: number;
  sides: SideResult[]; // the lab at each thread count first, then each PyTorch setup
  lab: string; // the fastest lab side: the lab's number
  best: string; // the fastest PyTorch side: the yardstick
  ratioToBestTorch: number; // the fastest lab side's wall ms / the yardstick's
  /** lab wall ms / PyTorch's, per BLAS environment (its faster thread count) */
  ratioByBlas: Record<string, number>;
  cpuRatioToTorch1: number; // the lab's least CPU ms / the fastest 1-thread PyTorch side's CPU ms: the load-robust ratio
  loss: { lab: number; torch: number[]; maxAbsDiff: number; ok: boolean };
  memory: {
    labRssMiB: number; // process peak so far
    wasmHeapMiB: number;
    tfBytesMiB: number;
    stepPeakMiB: number; // peak bytes of live tensor buffers during one step, weights and AdamW state included
    torchRssMiB: number[]; // per PyTorch side, peak over this case
  };
}

type Runner = (from: number, to: number) => Promise<StepTimes>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The lab's training at `threads` threads, on its own copy of the model and AdamW state (null: as set up). */
function labRunner(c: BenchCase, world: World, total: number, threads: number | null) {
  const model = benchModel(c, world);
  const batches = fixedBatches(world, c.batch, 2);
  const adam = createAdamState(model.params);
  const optim = benchOptim();
  const run: Runner = async (from, to) => {
    if (threads !== null) setNativeThreads(threads);
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

/** "lab, 2 threads": a lab side's name in the tables ("lab" when the backend has one thread count). */
export function labSideName(threads: number | null): string {
  return threads === null ? 'lab' : `lab, ${threads} thread${threads === 1 ? '' : 's'}`;
}

/**
 * Times every side of case `c`, round by round (rotating who goes first), each
 * side's round after an idle gap and `plan.settle` untimed steps: the side
 * before has just run through hundreds of MiB of its own, so the first step
 * after a switch meets cold caches, which a training run, stepping back to
 * back, never does (measured on the `lab` preset: 64 ms per step timed from
 * the switch against ~56 ms back to back at 2 threads). Every side runs the
 * same steps, so their losses are compared at every step, untimed ones too.
 * `labThreads`: the thread counts the lab runs at, each a side of its own
 * (null: one side, the backend as set up; the native kernels' counts need them loaded).
 */
export async function compareCase(
  c: BenchCase,
  world: World,
  torch: TorchServer[],
  plan: Plan,
  labThreads: (number | null)[] = [null],
): Promise<CaseResult> {
  const round = plan.settle + plan.perRound;
  const total = plan.warmup + plan.rounds * round;
  const labs = labThreads.map((n) => labRunner(c, world, total, n));
  const lab = labs[0];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lab-bench-${c.key}-`));
  writeShared(dir, c, lab.model, lab.batches, total);
  for (const t of torch) await t.load(c.key, dir);
  fs.rmSync(dir, { recursive: true, force: true });
  const runners: [string, Runner][] = [
    ...labs.map((l, i): [string, Runner] => [labSideName(labThreads[i]), l.run]),
    ...torch.map((t): [string, Runner] => [setupName(t.setup), (f, e) => t.steps(c.key, f, e)]),
  ];
  const ms: number[][] = runners.map(() => []);
  const cpu: number[][] = runners.map(() => []);
  const losses: number[][] = runners.map(() => []);
  for (let r = -1; r < plan.rounds; r++) {
    const from = r < 0 ? 0 : plan.warmup + r * round;
    const to = r < 0 ? plan.warmup : from + round;
    for (let j = 0; j < runners.length; j++) {
      const i = (j + Math.max(r, 0)) % runners.length;
      await idle(GAP_MS);
      const out = await runners[i][1](from, to);
      if (r >= 0) ms[i].push(...out.ms.slice(plan.settle));
      if (r >= 0) cpu[i].push(...out.cpuMs.slice(plan.settle));
      losses[i].push(...out.loss);
    }
    process.stdout.write(`  ${c.key}: round ${r + 2}/${plan.rounds + 1}\r`);
  }
  // one more step, for its peak of live tensor buffers (after the timed and compared ones;
  // lab.run has no await inside, so the step is over when it returns)
  const stepPeak = peakTensorBytes(() => void lab.run(total, total + 1));
  const state = 3 * Object.values(lab.model.params).reduce((n, p) => n + p.size * 4, 0); // weights, AdamW m and v
  const memory = {
    labRssMiB: process.resourceUsage().maxRSS / 1024,
    wasmHeapMiB: wasmHeapBytes() / 2 ** 20,
    tfBytesMiB: tf.memory().numBytes / 2 ** 20,
    stepPeakMiB: (state + stepPeak) / 2 ** 20,
    torchRssMiB: await Promise.all(torch.map((t) => t.maxRssMiB())),
  };
  for (const l of labs) l.dispose();
  const names = runners.map(([name]) => name);
  const setups = torch.map((t) => t.setup);
  return summarize(c, names, labThreads, setups, { ms, cpu, losses }, total, memory);
}

function summarize(
  c: BenchCase,
  names: string[],
  labThreads: (number | null)[],
  setups: TorchSetup[],
  times: { ms: number[][]; cpu: number[][]; losses: number[][] },
  steps: number,
  memory: CaseResult['memory'],
): CaseResult {
  const { ms, cpu, losses } = times;
  const flops = stepFlops(c.model, c.batch, c.objective);
  const nLab = labThreads.length;
  const sides: SideResult[] = names.map((name, i) => {
    const msPerStep = median(ms[i]);
    const gflops = flops / 1e9 / (msPerStep / 1000);
    const threads = labThreads[i];
    return {
      name,
      ...(i < nLab
        ? threads === null
          ? {}
          : { labThreads: threads }
        : { setup: setups[i - nLab] }),
      msPerStep,
      ms: ms[i],
      cpuMsPerStep: median(cpu[i]),
      cpuMs: cpu[i],
      parallelism: median(cpu[i].map((x, k) => x / ms[i][k])),
      peakRssMiB: i < nLab ? memory.labRssMiB : memory.torchRssMiB[i - nLab],
      gflops,
      peakFraction: gflops / PEAK_GFLOPS,
      losses: losses[i],
    };
  });
  const [labL, ...others] = losses; // every other side against the first lab side, lab sides too
  const torchL = others.slice(nLab - 1);
  let maxAbsDiff = 0;
  let ok = true;
  for (const t of others) {
    labL.forEach((l, s) => {
      const d = Math.abs(l - t[s]);
      maxAbsDiff = Math.max(maxAbsDiff, d);
      if (!(d <= LOSS_ABS + LOSS_REL * Math.abs(t[s]))) ok = false;
    });
  }
  const labSides = sides.slice(0, nLab);
  const torchSides = sides.slice(nLab);
  const fastest = (xs: SideResult[], key: 'msPerStep' | 'cpuMsPerStep' = 'msPerStep') =>
    xs.reduce((a, b) => (b[key] < a[key] ? b : a));
  const lab = fastest(labSides);
  const best = fastest(torchSides);
  const ratioByBlas: Record<string, number> = {};
  for (const b of new Set(setups.map((s) => s.blas)))
    ratioByBlas[b] =
      lab.msPerStep / fastest(torchSides.filter((s) => s.setup?.blas === b)).msPerStep;
  const oneThread = torchSides.filter((s) => s.setup?.threads === 1);
  return {
    key: c.key,
    label: c.label,
    objective: objectiveLabel(c.objective),
    gflopPerStep: flops / 1e9,
    steps,
    sides,
    lab: lab.name,
    best: best.name,
    ratioToBestTorch: lab.msPerStep / best.msPerStep,
    ratioByBlas,
    cpuRatioToTorch1:
      fastest(labSides, 'cpuMsPerStep').cpuMsPerStep /
      fastest(oneThread, 'cpuMsPerStep').cpuMsPerStep,
    loss: { lab: labL.at(-1)!, torch: torchL.map((t) => t.at(-1)!), maxAbsDiff, ok },
    memory,
  };
}
