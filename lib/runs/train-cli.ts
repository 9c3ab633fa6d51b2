/**
 * Command-line training (the contract of issue 5; tests outside this repo use it).
 * `scripts/train.ts` (npm run train) and the sweep workers both run `trainCli`:
 *   npm run train -- --preset <name> --steps <n> --seed <s> --out <dir>
 *     [--checkpoint-every <k>] [--keep-last <n>] [--no-eval] [--set key=value ...]
 *     [--init-from <run dir or .safetensors>]   (tower weights only: post-training)
 *   npm run train -- --resume <dir> [--no-eval]
 * Writes <dir>/config.json, run.json (CLI options a resume reuses), history.jsonl,
 * checkpoints/, weights.safetensors (the final weights, portable), final.json
 * (step, loss, weightsSha256) and, unless --no-eval,
 * results.json with the results table. A resumed run's final.json equals that of
 * the uninterrupted run.
 * Exit codes: 0 done; 1 other failure (e.g. missing dataset); 2 bad arguments or
 * config; 3 unusable checkpoint; 4 stopped on divergence (NaN/Inf).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../backend/index';
import { type ExperimentConfig, fromDotted, makeConfig } from '../config/presets';
import { ConfigError, validateConfig } from '../config/schema';
import { labPath, writeAtomic } from '../paths';
import { showTable } from '../plot/table';
import { DivergenceError } from '../train/step';
import { CheckpointError, listCheckpoints } from './checkpoint';
import { type FinalSummary, runExperiment, trainExperiment } from './experiment';

/** CLI options that are not part of the experiment config; a resume reuses them. */
interface RunSettings {
  checkpointEvery: number;
  keepLast: number;
  eval: boolean;
  initFrom?: string; // a run folder or .safetensors file whose tower weights start the run
}

interface Job {
  cfg: ExperimentConfig;
  out?: string;
  resume: boolean;
  settings: RunSettings;
}

/** A bad command line: exit code 2, message naming the option. */
class UsageError extends Error {}

function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v; // a bare word such as clip or map
  }
}

function intOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

function readJson(file: string, what: string): unknown {
  if (!fs.existsSync(file)) throw new UsageError(`${what}: ${file} not found`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${what}: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

const OPTIONS = {
  preset: { type: 'string' },
  steps: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  set: { type: 'string', multiple: true },
  'checkpoint-every': { type: 'string' },
  'keep-last': { type: 'string' },
  'no-eval': { type: 'boolean' },
  resume: { type: 'string' },
  'init-from': { type: 'string' },
} as const;

function parse(argv: string[]): Job {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  const every = intOption('checkpoint-every', v['checkpoint-every'], 0);
  const keepLast = intOption('keep-last', v['keep-last'], 1);
  if (v.resume !== undefined) {
    for (const k of ['preset', 'steps', 'seed', 'out', 'set', 'init-from'] as const)
      if (v[k] !== undefined)
        throw new UsageError(
          `--${k} cannot be combined with --resume (the run's config.json is used)`,
        );
    const dir = labPath(v.resume);
    const cfg = readJson(path.join(dir, 'config.json'), '--resume') as ExperimentConfig;
    const runJson = path.join(dir, 'run.json');
    const saved = (
      fs.existsSync(runJson) ? readJson(runJson, '--resume') : {}
    ) as Partial<RunSettings>;
    const settings = { checkpointEvery: 100, keepLast: 3, eval: true, ...saved };
    if (every !== undefined) settings.checkpointEvery = every;
    if (keepLast !== undefined) settings.keepLast = keepLast;
    if (v['no-eval']) settings.eval = false;
    return { cfg: validateConfig(cfg), out: dir, resume: true, settings };
  }
  const sets: Record<string, unknown> = {};
  for (const kv of v.set ?? []) {
    const i = kv.indexOf('=');
    if (i < 1) throw new UsageError(`--set expects key=value, got '${kv}'`);
    sets[kv.slice(0, i)] = parseValue(kv.slice(i + 1));
  }
  if (v.steps !== undefined) sets.steps = parseValue(v.steps);
  if (v.seed !== undefined) sets.seed = parseValue(v.seed);
  const cfg = makeConfig(v.preset ?? 'lab', fromDotted(sets));
  const out = v.out === undefined ? undefined : labPath(v.out);
  if (out && listCheckpoints(path.join(out, 'checkpoints')).length > 0)
    throw new UsageError(
      `--out ${out} already holds checkpoints: use --resume ${out} or another --out`,
    );
  const initFrom = v['init-from'] === undefined ? undefined : labPath(v['init-from']);
  const settings = {
    checkpointEvery: every ?? 100,
    keepLast: keepLast ?? 3,
    eval: !v['no-eval'],
    ...(initFrom ? { initFrom } : {}),
  };
  return { cfg, out, resume: false, settings };
}

function printResults(run: ReturnType<typeof runExperiment>): void {
  const rows = run.results.map((r) => ({
    task: r.task,
    chance: r.chance,
    zeroShot: r.zeroShot,
    ...Object.fromEntries(Object.entries(r.fewShot).map(([k, v]) => [`${k}-shot`, v])),
  }));
  showTable(rows, {
    title: `${run.config.name}/${run.config.objective.name}: ${run.trainSeconds.toFixed(0)} s training`,
  });
  console.log('retrieval', JSON.stringify(run.retrieval));
}

async function train(job: Job): Promise<void> {
  await initBackend();
  console.log(JSON.stringify(job.cfg));
  const { settings: s } = job;
  if (job.out && !job.resume)
    writeAtomic(path.join(job.out, 'run.json'), `${JSON.stringify(s, null, 2)}\n`, { fsync: true });
  const opts = {
    outDir: job.out,
    checkpointEvery: s.checkpointEvery,
    keepLast: s.keepLast,
    resume: job.resume,
    evalDuringTraining: s.eval,
    initFrom: s.initFrom,
  };
  let final: FinalSummary;
  if (s.eval) {
    const run = runExperiment(job.cfg, opts);
    printResults(run);
    final = run.final;
  } else final = trainExperiment(job.cfg, opts).final;
  console.log('final', JSON.stringify(final));
}

/** The exit code of a failure, and a one-line message (a stack only for the unexpected). */
function report(e: unknown, parsing = false): number {
  const err = e instanceof Error ? e : new Error(String(e));
  const code =
    parsing || err instanceof UsageError || err instanceof ConfigError
      ? 2
      : err instanceof CheckpointError
        ? 3
        : err instanceof DivergenceError
          ? 4
          : 1;
  const known = code !== 1 || err.message.startsWith('Fashion-MNIST');
  console.error(`train: ${known ? err.message : shortStack(err)}`);
  return code;
}

/** An unexpected error's stack without multi-kB lines (a bundled module's source, say). */
function shortStack(err: Error): string {
  const lines = (err.stack ?? err.message).split('\n').slice(0, 8);
  return lines.map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l)).join('\n');
}

/**
 * Runs the train command line `argv` (without node and script); resolves to the
 * exit code. Installs handlers for stray errors first, so that one never ends in
 * the wasm backend's own handler, which prints the whole bundled module.
 */
export async function trainCli(argv: string[]): Promise<number> {
  const fail = (e: unknown) => {
    console.error(`train: ${e instanceof Error ? shortStack(e) : String(e)}`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  let job: Job;
  try {
    job = parse(argv);
  } catch (e) {
    // parseArgs' errors are plain Errors: still exit 2
    return report(e, true);
  }
  try {
    await train(job);
    return 0;
  } catch (e) {
    return report(e);
  }
}

if (require.main === module) trainCli(process.argv.slice(2)).then((code) => process.exit(code));
