/**
 * Finished-run reuse: a training run is a pure function of its config, the lab's
 * code and the backend (every run is reproducible from its seed and config), so a
 * run that already finished with all three equal need not train again. Notebooks
 * ask for it (`runExperiment(cfg, { outDir, reuse: true })`): notebook 01 and 02
 * train the same SigLIP, 03 and 04 the same Llip, and a re-executed notebook
 * retrains nothing.
 *
 * The index is one small JSON file per key under out/runs/reuse/ (LAB_REUSE_DIR), naming the run
 * folders that hold finished runs (one per way of running: checkpoints, evaluations). A hit is checked before it is used: the
 * folder's config.json must equal the config, its final.json the one the index
 * recorded, and the loaded weights must hash to that final.json's sha256; a
 * folder trained over since, a half-written one or a code change makes it a miss
 * and the run trains. Two processes that miss at once both train (same bits); an
 * index write racing another can drop its entry, which costs one more training.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../backend/index';
import type { ExperimentConfig } from '../config/presets';
import { labPath, writeAtomic } from '../paths';
import { configId } from './spec';

/** What a run was trained with besides its config: all a reuse must match. */
export interface RunShape {
  checkpointEvery: number;
  keepLast: number;
  evalDuringTraining: boolean;
}

export interface ReuseEntry extends RunShape {
  dir: string;
  trainSeconds: number;
  weightsSha256: string;
  lossCurveSha256: string;
}

/** The index folder: out/runs/reuse/, or LAB_REUSE_DIR (tests keep theirs apart). */
const indexDir = () => labPath(process.env.LAB_REUSE_DIR || 'out/runs/reuse');

const SOURCE = /\.(ts|c|h)$/;

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? sourceFiles(p) : SOURCE.test(e.name) ? [p] : [];
    });
}

let sourcesHash: string | null = null;

/** lib/'s sources (TypeScript and the native kernels) and package-lock.json, hashed once per process. */
function hashSources(): string {
  if (sourcesHash) return sourcesHash;
  const h = createHash('sha256');
  const lib = labPath('lib');
  for (const f of sourceFiles(lib)) {
    h.update(path.relative(lib, f));
    h.update(fs.readFileSync(f));
  }
  const lock = labPath('package-lock.json');
  if (fs.existsSync(lock)) h.update(fs.readFileSync(lock));
  sourcesHash = h.digest('hex');
  return sourcesHash;
}

/**
 * A hash of everything besides the config that decides a run's bits: lib/'s
 * sources, the installed package versions, the backend line and the LAB_*
 * switches (LAB_NATIVE_ATTN=0 changes last bits). Only the sources are read
 * once; the backend and the switches are read at each call.
 */
export function codeKey(): string {
  const lab = Object.entries(process.env)
    .filter(([k]) => k.startsWith('LAB_') && k !== 'LAB_REUSE_DIR')
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return createHash('sha256')
    .update(hashSources())
    .update(backendInfo()?.description ?? 'no backend')
    .update(JSON.stringify(lab))
    .digest('hex')
    .slice(0, 12);
}

const indexFile = (cfg: ExperimentConfig) =>
  path.join(indexDir(), `${configId(cfg)}-${codeKey()}.json`);

function readIndex(file: string): ReuseEntry[] {
  try {
    const list = JSON.parse(fs.readFileSync(file, 'utf8'));
    return Array.isArray(list) ? list : [];
  } catch {
    return []; // absent or unreadable: nothing to reuse
  }
}

const sameShape = (a: RunShape, b: RunShape) =>
  a.checkpointEvery === b.checkpointEvery &&
  a.keepLast === b.keepLast &&
  a.evalDuringTraining === b.evalDuringTraining;

/** Can a run trained as `e` stand in for one asked as `shape`? Checkpoints are part of what a run leaves. */
const fits = (e: RunShape, shape: RunShape) =>
  e.evalDuringTraining === shape.evalDuringTraining &&
  (shape.checkpointEvery === 0 || sameShape(e, shape));

/** Does the folder still hold the run the entry recorded? */
function intact(e: ReuseEntry, cfg: ExperimentConfig): boolean {
  try {
    const config = JSON.parse(fs.readFileSync(path.join(e.dir, 'config.json'), 'utf8'));
    const final = JSON.parse(fs.readFileSync(path.join(e.dir, 'final.json'), 'utf8'));
    return (
      configId(config) === configId(cfg) &&
      final.weightsSha256 === e.weightsSha256 &&
      final.lossCurveSha256 === e.lossCurveSha256
    );
  } catch {
    return false; // the folder is gone or half-written
  }
}

/**
 * The finished runs of `cfg` with this code and backend that `shape` can use,
 * checked against their folders, in the order they were recorded. The caller
 * still checks the weights it loads (`final.weightsSha256`).
 */
export function findReusable(cfg: ExperimentConfig, shape: RunShape): ReuseEntry[] {
  return readIndex(indexFile(cfg)).filter((e) => fits(e, shape) && intact(e, cfg));
}

/** Record a finished run of `cfg`; it replaces the entry of the same shape and any of its folder. */
export function recordReusable(cfg: ExperimentConfig, entry: ReuseEntry): void {
  const file = indexFile(cfg);
  const dir = path.resolve(entry.dir);
  const kept = readIndex(file).filter((e) => path.resolve(e.dir) !== dir && !sameShape(e, entry));
  writeAtomic(file, `${JSON.stringify([...kept, entry], null, 2)}\n`);
}

/** Copy a run folder's files (checkpoints included) into `to`, each atomically. */
export function copyRun(from: string, to: string): void {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) copyRun(src, dst);
    else if (e.name !== 'results.json') {
      fs.mkdirSync(to, { recursive: true });
      writeAtomic(dst, fs.readFileSync(src));
    }
  }
}
