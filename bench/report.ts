/**
 * The benchmark's outputs: a console table, a JSON result under bench/results/,
 * and the table between the markers in bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CaseResult } from './compare';
import type { EvalTimes, FigureTimes } from './extras';
import type { LlipStepTime } from './llip';
import type { LossShape, LossTimes } from './losses';
import { formatProfile, type KernelSetsAB, type StepProfile } from './profile';

export interface BenchResult {
  date: string;
  smoke: boolean;
  machine: { cpus: string[]; cores: number; memGiB: number; node: string; platform: string };
  loadavg: { before: number[]; after: number[] };
  commit: string;
  versions: Record<string, string>;
  backend: string;
  cases: CaseResult[];
  profiles: { model: string; steps: StepProfile }[];
  kernels: KernelSetsAB | null;
  losses: {
    shape: LossShape;
    reps: number;
    lab: LossTimes;
    torch: Record<string, number>; // the faster 1-thread setup per objective
    torchBySetup?: Record<string, Record<string, number>>;
  } | null;
  llip?: LlipStepTime[]; // Llip training steps vs K (bench/llip.ts)
  evaluation: EvalTimes;
  figure: FigureTimes | null;
  runtimeS: number;
}

const ROOT = path.resolve(__dirname, '..');
const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

export function machine(): BenchResult['machine'] {
  const cpus = [...new Set(os.cpus().map((c) => c.model.trim()))];
  const memGiB = os.totalmem() / 2 ** 30;
  return {
    cpus,
    cores: os.cpus().length,
    memGiB,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** HEAD, and the uncommitted files that can change the numbers (lib/, bench/, package.json) if any. */
export function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync(
      'git',
      [
        'status',
        '--porcelain',
        '--',
        'lib',
        'bench',
        'package.json',
        ':!bench/results',
        ':!bench/README.md',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    )
      .split('\n')
      .map((l) => l.slice(3).trim())
      .filter(Boolean);
    if (!dirty.length) return sha;
    const more = dirty.length > 5 ? ` and ${dirty.length - 5} more` : '';
    return `${sha} + uncommitted ${dirty.slice(0, 5).join(', ')}${more}`;
  } catch {
    return 'unknown';
  }
}

/** Versions of what the numbers depend on: tfjs, node, torch, OpenBLAS. */
export function versions(torch: string, addon: string | null): Record<string, string> {
  const pkg = (name: string) => {
    try {
      return JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
    } catch {
      return 'missing';
    }
  };
  return {
    '@tensorflow/tfjs': pkg('@tensorflow/tfjs'),
    '@tensorflow/tfjs-backend-wasm': pkg('@tensorflow/tfjs-backend-wasm'),
    torch,
    addon: addon ?? 'not loaded',
    node: process.version,
  };
}

const f1 = (x: number) => x.toFixed(1);
const f0 = (x: number) => x.toFixed(0);

const ratio = (x: number) => `${x.toFixed(2)}×`;

/** "2977 MiB RSS (process peak so far), wasm heap 2749 MiB, tensor buffers ≤ 310 MiB in a step". */
function labMemory(c: CaseResult): string {
  const m = c.memory;
  return `${f0(m.labRssMiB)} MiB RSS (process peak so far), wasm heap ${f0(m.wasmHeapMiB)} MiB, tensor buffers ≤ ${f0(m.stepPeakMiB)} MiB in a step`;
}

/** One line per case: the lab against the fastest PyTorch setup, and against each BLAS environment's best. */
export function summaryTable(cases: CaseResult[]): string {
  const blas = [...new Set(cases.flatMap((c) => Object.keys(c.ratioByBlas)))];
  const head =
    blas.length > 1
      ? blas
          .map((b) => ` lab / PyTorch, BLAS ${b === 'pinned' ? 'as pinned' : 'pins unset'} |`)
          .join('')
      : '';
  const rows = cases.map((c) => {
    const lab = c.sides.find((s) => s.name === c.lab)!; // the fastest lab side
    const threads = lab.labThreads === undefined ? '' : ` (${lab.name.replace('lab, ', '')})`;
    const best = c.sides.find((s) => s.name === c.best)!;
    const byBlas = blas.length > 1 ? blas.map((b) => ` ${ratio(c.ratioByBlas[b])} |`).join('') : '';
    const torchPeak = Math.max(...c.memory.torchRssMiB);
    return `| ${c.label} | ${c.objective} | ${f0(lab.msPerStep)}${threads} | ${f0(best.msPerStep)} (${best.name.replace('PyTorch ', '')}) | **${ratio(c.ratioToBestTorch)}** |${byBlas} ${ratio(c.cpuRatioToTorch1)} | ${f0(c.memory.labRssMiB)} / ${f0(c.memory.stepPeakMiB)} | ${f0(best.peakRssMiB)} (max ${f0(torchPeak)}) | ${c.loss.ok ? 'ok' : 'MISMATCH'} (${c.loss.maxAbsDiff.toExponential(1)}) |`;
  });
  return [
    `| model | objective | fastest lab ms/step (threads) | fastest PyTorch ms/step (setup) | lab / fastest PyTorch |${head} lab CPU / fastest 1-thread PyTorch CPU | lab peak MiB: RSS / tensor buffers in a step | PyTorch peak RSS MiB, fastest setup (max over setups) | losses agree (max abs diff) |`,
    `|---|---|---|---|---|${blas.length > 1 ? blas.map(() => '---|').join('') : ''}---|---|---|---|`,
    ...rows,
  ].join('\n');
}

export function trainingTable(cases: CaseResult[]): string {
  const rows = cases.flatMap((c) =>
    c.sides.map((s, i) => {
      const isLab = s.setup === undefined;
      const best = c.sides.find((t) => t.name === c.best)!;
      const bold = s.name === c.lab ? '**' : ''; // the fastest lab side's ratio, the table's number
      const r = isLab
        ? `${bold}${ratio(s.msPerStep / best.msPerStep)}${bold}`
        : s.name === c.best
          ? 'yardstick'
          : '';
      const mem = isLab ? labMemory(c) : `${f0(s.peakRssMiB)} MiB RSS`;
      const loss = s.losses.at(-1)!.toFixed(4);
      const label =
        i === 0 ? `${c.label}, ${c.objective}, ${c.gflopPerStep.toFixed(1)} GFLOP/step` : '';
      return `| ${label} | ${s.name} | ${f0(s.msPerStep)} | ${f0(s.cpuMsPerStep)} | ${s.parallelism.toFixed(2)} | ${r} | ${f1(s.gflops)} | ${f1(100 * s.peakFraction)}% | ${loss} | ${mem} |`;
    }),
  );
  return [
    '| model, objective | runs on | ms/step (median) | CPU ms/step | CPU / wall | lab / fastest PyTorch | GFLOP/s | of peak | loss after last step | peak memory |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function otherTable(r: BenchResult): string {
  const e = r.evaluation;
  const lines = [
    '| task | ms |',
    '|---|---|',
    `| embed a ${e.images}-image cache (\`lab\` preset model) | ${f0(e.embedMs)} |`,
    `| zero-shot over the cache (8 classes × 3 prompts) | ${f0(e.zeroShotMs)} |`,
    `| few-shot prototypes over the cache (k = 1, 2, 4, 8, 16; 5 episodes) | ${f0(e.fewShotMs)} |`,
    `| **zero-shot + few-shot evaluation** | **${f0(e.evalMs)}** |`,
    `| **training-free few-shot suite** over the cache (zero-shot, prototype, Tip-Adapter default and cross-validated, 3 kNN votes; k = ${e.suiteShots.join(', ')}; ${e.suiteEpisodes} episode${e.suiteEpisodes === 1 ? '' : 's'}) | **${f0(e.suiteMs)}** |`,
    `| linear probe on the same draws (5-fold CV over 5 λ + final fit, 300 steps each) | ${f0(e.probeMs)} |`,
  ];
  if (r.figure) {
    lines.push(
      `| static figure export (savePng), first (starts Chromium) | ${f0(r.figure.firstMs)} |`,
    );
    lines.push(`| static figure export (savePng), warm | ${f0(r.figure.warmMs)} |`);
  }
  return lines.join('\n');
}

function kernelsTable(r: BenchResult): string {
  const k = r.kernels;
  if (!k) return 'Kernel sets: not measured (native kernels off).';
  const first = k.sets[0];
  return [
    `Before/after: one ${k.model} step with each kernel set, alternating in one process (${k.rounds} rounds, median):`,
    '',
    '| kernels | ms/step | CPU ms/step | speed-up over stock wasm |',
    '|---|---|---|---|',
    ...k.sets.map(
      (s) => `| ${s.name} | ${f0(s.ms)} | ${f0(s.cpuMs)} | ${(first.ms / s.ms).toFixed(1)}× |`,
    ),
  ].join('\n');
}

function lossesTable(r: BenchResult): string {
  const l = r.losses;
  if (!l) return '';
  const s = l.shape;
  const names: Record<string, string> = {
    siglip: 'SigLIP',
    clip: 'CLIP',
    lixp: 'LIxP (batch cross-attention, α = 0.9)',
    llip: `Llip (K = ${s.mixtureTokens} mixture tokens, ${s.heads} heads)`,
  };
  return [
    `Objectives alone, forward + backward w.r.t. embeddings and loss parameters, batch ${s.batch}, width ${s.dim} (median of ${l.reps}; PyTorch: the faster 1-thread setup):`,
    '',
    '| objective | lab ms | PyTorch 1 thread ms | lab / PyTorch |',
    '|---|---|---|---|',
    ...Object.keys(names).map((n) => {
      const [a, b] = [l.lab[n as keyof LossTimes], l.torch[n]];
      return `| ${names[n]} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a / b).toFixed(2)}× |`;
    }),
  ].join('\n');
}

function llipTable(r: BenchResult): string {
  if (!r.llip?.length) return '';
  const base = r.llip[0];
  const cpu = (x?: number) => (x === undefined ? '' : f0(x));
  return [
    'Llip training steps on the `lab` preset vs mixture tokens K (lab only; K = 0 is the SigLIP step of the same towers; the models take turns step by step):',
    '',
    '| K | ms/step | CPU ms/step | × SigLIP step (wall) | × SigLIP step (CPU) |',
    '|---|---|---|---|---|',
    ...r.llip.map(
      (s) =>
        `| ${s.K || 'SigLIP'} | ${f0(s.ms)} | ${cpu(s.cpuMs)} | ${(s.ms / base.ms).toFixed(2)}× | ${s.cpuMs && base.cpuMs ? `${(s.cpuMs / base.cpuMs).toFixed(2)}×` : ''} |`,
    ),
  ].join('\n');
}

export function markdown(r: BenchResult): string {
  const m = r.machine;
  const loss = r.cases
    .map(
      (c) =>
        `${c.key}: max |Δloss| ${c.loss.maxAbsDiff.toExponential(1)} over ${c.steps} steps (${c.loss.ok ? 'ok' : 'MISMATCH'})`,
    )
    .join('; ');
  return [
    `Measured ${r.date}${r.smoke ? ' (smoke mode)' : ''} on ${m.cpus.join(', ')} (${m.cores} cores), node ${m.node}, commit ${r.commit}.`,
    `Backend: ${r.backend}. PyTorch ${r.versions.torch}. Load average before/after: ${r.loadavg.before.map(f1).join(' ')} / ${r.loadavg.after.map(f1).join(' ')}.`,
    '',
    summaryTable(r.cases),
    '',
    `Same weights, batches and AdamW schedule on both sides; every PyTorch setup's loss after every step within 0.02 + 1 % of the lab's (${loss}). Every side and step:`,
    '',
    trainingTable(r.cases),
    '',
    `CPU / wall: the threads a side really used (median over steps). Peak = ${235} GFLOP/s (matmul peak of this machine). PyTorch peak RSS: its process's peak over that case alone (reset when the case loads); the lab's RSS and wasm heap only grow, so the \`lab\` preset cases run first.`,
    '',
    lossesTable(r),
    '',
    llipTable(r),
    '',
    otherTable(r),
    '',
    kernelsTable(r),
    '',
    ...r.profiles.flatMap((p) => [
      `Profile of one lab step, ${p.model} (top kernels by time, tf.profile):`,
      '',
      formatProfile(p.steps),
      '',
    ]),
    `Whole benchmark: ${f0(r.runtimeS)} s.`,
  ].join('\n');
}

/** Writes bench/results/<date>.json and replaces the table in bench/README.md (not when smoke). */
export function writeResult(r: BenchResult): string {
  // Smoke runs (CI) leave the committed results alone.
  const dir = r.smoke ? os.tmpdir() : path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${r.date.replace(/[:]/g, '-')}${r.smoke ? '-smoke' : ''}.json`);
  fs.writeFileSync(file, `${JSON.stringify(r, null, 1)}\n`);
  const readme = path.join(ROOT, 'bench', 'README.md');
  if (!r.smoke && fs.existsSync(readme)) {
    const text = fs.readFileSync(readme, 'utf8');
    const [a, b] = [text.indexOf(BEGIN), text.indexOf(END)];
    if (a >= 0 && b > a) {
      const next = `${text.slice(0, a + BEGIN.length)}\n${markdown(r)}\n${text.slice(b)}`;
      fs.writeFileSync(readme, next);
    }
  }
  return file;
}
