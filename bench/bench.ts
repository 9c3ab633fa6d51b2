/**
 * `npm run bench`: the lab's training step against PyTorch on this machine.
 *
 * Trains every objective (SigLIP, CLIP, LIxP, Llip at K = 32) on the `lab`
 * preset and SigLIP on the model (32×32, patch 4, width 128, 4 image + 2
 * text layers, batch 256) in TF.js (the backend the lab picks) and in PyTorch
 * (bench/torch_bench.py) at 1 and 2 threads, each with the BLAS environment as
 * pinned and with the pins unset for the child alone, from the same weights, on
 * the same batches, with the same AdamW schedule, alternating after warm-up;
 * checks the losses agree, profiles one lab step of each model, times Llip's
 * step vs K, evaluation over a 10 000-image cache and static figure export.
 * Writes bench/results/<date>.json and the table in bench/README.md.
 *
 * `npm run bench -- --smoke` (or BENCH_SMOKE=1): tiny sizes, a couple of steps,
 * for CI; writes its JSON to the temp folder and leaves README.md alone.
 *
 * PyTorch (Debian python3-torch under /usr/bin/python3, or LAB_PYTHON) is checked
 * first: without it both modes stop at once with one line saying what to install.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from '../lib/backend/index';
import { loadAddon, setNativeThreads } from '../lib/backend/native';
import { createWorld } from '../lib/data/world';
import { disposeParams } from '../lib/model/params';
import { createModel } from '../lib/objectives/model';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { type CaseResult, compareCase, type Plan } from './compare';
import { type FigureTimes, timeEvaluation, timeFigureExport } from './extras';
import { timeLlipSteps } from './llip';
import { LOSS_SHAPE, type LossShape, timeLossesLab } from './losses';
import { kernelSetsAB, labStep, profileStep } from './profile';
import { type BenchResult, gitCommit, machine, markdown, versions, writeResult } from './report';
import { type BenchCase, benchCases, benchModel, benchOptim, fixedBatches, LLIP_K } from './setup';
import {
  blasPins,
  ChildError,
  checkTorch,
  formatError,
  setupName,
  TorchServer,
  torchSetups,
} from './torch';

const SMOKE = process.argv.includes('--smoke') || process.env.BENCH_SMOKE === '1';
const PLAN: Plan = SMOKE
  ? { warmup: 1, rounds: 1, perRound: 1, settle: 1 }
  : { warmup: 2, rounds: Number(process.env.BENCH_ROUNDS ?? 5), perRound: 2, settle: 1 };
const CACHE_IMAGES = SMOKE ? 1000 : 10000;
const AB_ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 4);

/** A lab training step of `c` on one fixed batch, and a dispose for its state. */
function stepOf(c: BenchCase, world: ReturnType<typeof createWorld>) {
  const model = benchModel(c, world);
  const [batch] = fixedBatches(world, c.batch, 1);
  const adam = createAdamState(model.params);
  let n = 0;
  const step = () => labStep(model, batch, adam, n++, 100, benchOptim());
  const dispose = () => {
    disposeAdamState(adam);
    disposeParams(model.params);
  };
  return { step, dispose };
}

/** Profiles one lab step of `c` (after one unprofiled step to warm up). */
async function profileCase(c: BenchCase, world: ReturnType<typeof createWorld>) {
  const { step, dispose } = stepOf(c, world);
  step();
  const steps = await profileStep(step);
  dispose();
  return { model: `${c.label}, ${c.objective.name}`, steps };
}

/** Before/after of the kernel sets on one `lab`-preset step (when the addon is there). */
function kernelsCase(c: BenchCase, world: ReturnType<typeof createWorld>, native: boolean) {
  if (!native) return null;
  const { step, dispose } = stepOf(c, world);
  const ab = kernelSetsAB(c.label, step, SMOKE ? 1 : AB_ROUNDS, backendThreads());
  dispose();
  return ab;
}

/** Smoke mode times the objectives at toy sizes. */
const SMOKE_LOSS_SHAPE: LossShape = { batch: 16, dim: 16, mixtureTokens: 4, heads: 2, tau: 5 };
const LOSS_REPS = Number(process.env.BENCH_LOSS_REPS ?? 7);

/** Forward + backward of each objective, lab and PyTorch (the faster 1-thread setup per objective). */
async function compareLosses(torch: TorchServer[]): Promise<BenchResult['losses']> {
  const shape = SMOKE ? SMOKE_LOSS_SHAPE : LOSS_SHAPE;
  const reps = SMOKE ? 1 : LOSS_REPS;
  console.log(`[bench] objectives at batch ${shape.batch}: forward + backward, median of ${reps}`);
  const lab = timeLossesLab(shape, reps);
  const oneThread = torch.filter((t) => t.setup.threads === 1);
  const each: Record<string, number>[] = [];
  for (const t of oneThread) each.push(await t.losses(shape, reps));
  const best = Object.fromEntries(
    Object.keys(each[0]).map((n) => [n, Math.min(...each.map((e) => e[n]))]),
  );
  const bySetup = Object.fromEntries(oneThread.map((t, i) => [setupName(t.setup), each[i]]));
  return { shape, reps, lab, torch: best, torchBySetup: bySetup };
}

function backendThreads(): number {
  return backendInfo()?.threads ?? 1;
}

/** The `lab`-preset SigLIP case (or the first): the model of the profiles, kernel sets and evaluation. */
function labSiglip(cases: BenchCase[]): BenchCase {
  return cases.find((k) => k.key === 'lab-siglip') ?? cases[0];
}

function evalModel(world: ReturnType<typeof createWorld>, cases: BenchCase[]) {
  return createModel(labSiglip(cases).model, 'siglip', world.tokenizer.END, 0);
}

function printCase(r: CaseResult): void {
  console.log(`\n${r.label}, ${r.objective}: ${r.gflopPerStep.toFixed(1)} GFLOP/step`);
  for (const s of r.sides) {
    const pct = (100 * s.peakFraction).toFixed(1);
    console.log(
      `  ${s.name.padEnd(38)} ${s.msPerStep.toFixed(0).padStart(6)} ms/step (CPU ${s.cpuMsPerStep.toFixed(0)}, ×${s.parallelism.toFixed(2)})  ${s.gflops.toFixed(1)} GFLOP/s (${pct}% of peak)  loss ${s.losses.at(-1)!.toFixed(4)}  peak RSS ${s.peakRssMiB.toFixed(0)} MiB`,
    );
  }
  console.log(
    `  fastest lab (${r.lab}) / best PyTorch (${r.best}): ${r.ratioToBestTorch.toFixed(2)}× wall`,
  );
  console.log(`  lab / fastest 1-thread PyTorch: ${r.cpuRatioToTorch1.toFixed(2)}× CPU time`);
  console.log(`  losses agree: ${r.loss.ok} (max |Δ| ${r.loss.maxAbsDiff.toExponential(2)})`);
}

async function main(): Promise<void> {
  const start = performance.now();
  const before = os.loadavg();
  const commit = gitCommit(); // at the start: others may commit while the bench runs
  const missing = checkTorch();
  if (missing) throw new ChildError(missing);
  const info = await initBackend();
  const world = createWorld({ trainScenes: SMOKE ? 300 : 2000, valScenes: 64, testScenes: 64 });
  const cases = benchCases(world, SMOKE);
  const setups = torchSetups();
  console.log(
    `[bench] PyTorch setups: ${setups.map(setupName).join('; ')} (pins in this environment: ${blasPins().join(' ') || 'none'})`,
  );
  const torch = setups.map((s) => new TorchServer(undefined, s));
  // The lab at 1 thread and at its default (every core), like PyTorch's setups: each side at its fastest.
  const labThreads = info.native ? [...new Set([1, info.threads])] : [null];
  const results: CaseResult[] = [];
  let torchVersion = '';
  let losses: BenchResult['losses'] = null;
  try {
    for (const c of cases) {
      console.log(
        `[bench] ${c.label}, ${c.objective.name}: ${PLAN.warmup} warm-up + ${PLAN.rounds}×(${PLAN.settle} untimed + ${PLAN.perRound}) steps per side`,
      );
      const r = await compareCase(c, world, torch, PLAN, labThreads);
      if (info.native) setNativeThreads(info.threads); // back to the default for what follows
      printCase(r);
      results.push(r);
    }
    losses = await compareLosses(torch);
    torchVersion = torch[0].version();
  } finally {
    for (const t of torch) t.close();
  }
  const profiled = cases.filter((c) => SMOKE || !['lab-clip', 'lab-lixp'].includes(c.key));
  const profiles = [];
  for (const c of profiled) profiles.push(await profileCase(c, world));
  const kernels = kernelsCase(labSiglip(cases), world, info.native);
  const llipCase = labSiglip(cases);
  console.log(`[bench] Llip training steps vs K, ${llipCase.label}`);
  const llip = timeLlipSteps(llipCase, world, SMOKE ? [4] : [8, 16, LLIP_K, 64], SMOKE ? 1 : 5);
  const model = evalModel(world, cases);
  const evaluation = timeEvaluation(model, world, CACHE_IMAGES, SMOKE ? 1 : 5);
  disposeParams(model.params);
  // Smoke skips it: starting Chromium alone takes 5-30 s, and the notebooks test savePng.
  const figure: FigureTimes | null = SMOKE ? null : await timeFigureExport();
  const addon = loadAddon();
  const result: BenchResult = {
    date: new Date().toISOString().slice(0, 19),
    smoke: SMOKE,
    machine: machine(),
    loadavg: { before, after: os.loadavg() },
    commit,
    versions: versions(torchVersion, 'addon' in addon ? addon.addon.version() : null),
    backend: info.description,
    cases: results,
    profiles,
    kernels,
    losses,
    llip,
    evaluation,
    figure,
    runtimeS: (performance.now() - start) / 1000,
  };
  console.log(`\n${markdown(result)}`);
  console.log(`\n[bench] wrote ${writeResult(result)}`);
  tf.disposeVariables();
  if (results.some((r) => !r.loss.ok)) {
    console.error('[bench] lab and PyTorch losses disagree: the comparison is not fair');
    process.exitCode = 1;
  }
}

/** One report and exit 1: expected failures in one line, others with a short, clipped stack. */
function die(e: unknown): never {
  console.error(`[bench] ${formatError(e)}`);
  process.exit(1);
}

// First in line: the wasm backend's Emscripten module adds handlers that rethrow, and
// Node then prints the throwing line of its minified source (36 kB) with the error.
process.prependListener('uncaughtException', die);
process.prependListener('unhandledRejection', die);
main().catch(die);
