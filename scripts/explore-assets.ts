/**
 * The explorer's assets (explore/src/manifest.ts describes them): trains SigLIP,
 * CLIP, LIxP and Llip with the lab's own code path (trainExperiment) or reuses
 * finished runs, and writes into one folder
 *   manifest.json, <model>.safetensors (the runs' portable weights, copied),
 *   gallery.u8 (test-split scenes), support.u8 (16 support images per class of
 *   a few tasks) — 8-bit RGB, 32×32, so the page gets pixels, not the dataset.
 * A second call with the same settings finds the manifest's key unchanged and
 * does nothing; a run folder whose config.json equals the planned config is
 * reused instead of retrained.
 *
 *   node --import tsx scripts/explore-assets.ts [--preset lab|tiny] [--steps n]
 *     [--out out/explore/data-<preset>] [--runs out/explore/runs] [--from siglip=<run dir> …] [--force]
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  EXPLORE_MODELS,
  EXPLORE_TASKS,
  type ExploreModelKey,
  type GalleryItem,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestModel,
  MODEL_LABELS,
  pixelsToBytes,
} from '../explore/src/manifest';
import { initBackend } from '../lib/backend/index';
import { type ExperimentConfig, makeConfig } from '../lib/config/presets';
import {
  COLOURS,
  COUNTS,
  GARMENTS,
  POSITIONS,
  type Scene,
  SHAPES,
  SIZES,
  TEXTURES,
} from '../lib/data/scene';
import { buildTaskSuite } from '../lib/data/tasks';
import { PIXELS, type Task } from '../lib/data/types';
import { createWorld, type World } from '../lib/data/world';
import { disposeParams } from '../lib/model/params';
import { loadWeights } from '../lib/model/safetensors';
import { createModel, disposeModel } from '../lib/objectives/model';
import { gitCommit, labPath, writeAtomic } from '../lib/paths';
import { Rng } from '../lib/rng';
import { resolveModelConfig, trainExperiment } from '../lib/runs/experiment';

export interface ExploreAssetOptions {
  preset: string;
  /** training steps (the preset's own when absent) */
  steps?: number;
  /** where the assets go */
  outDir: string;
  /** where trained runs go (one folder per preset and model) */
  runsDir: string;
  /** finished run folders to use instead of training (their weights.safetensors + config.json) */
  from?: Partial<Record<ExploreModelKey, string>>;
  /** gallery images (test-split scenes, in their fixed order) */
  gallery?: number;
  /** rebuild even when the manifest is current */
  force?: boolean;
  log?: (line: string) => void;
}

const SUPPORT_PER_CLASS = 16; // the few-shot view's 1/4/16 shots
const CAPTION_SEED = 7;

/** The config each model trains with: the preset, the steps, the objective by name (its defaults). */
export function exploreConfigs(
  o: Pick<ExploreAssetOptions, 'preset' | 'steps'>,
): Record<ExploreModelKey, ExperimentConfig> {
  const steps = o.steps === undefined ? {} : { steps: o.steps };
  return Object.fromEntries(
    EXPLORE_MODELS.map((key) => [
      key,
      makeConfig(o.preset, { ...steps, objective: { name: key } }),
    ]),
  ) as Record<ExploreModelKey, ExperimentConfig>;
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const sha256 = (x: string | Buffer) => createHash('sha256').update(x).digest('hex');

/** What decides the assets; the manifest records its hash. */
function assetKey(o: ExploreAssetOptions, configs: Record<string, ExperimentConfig>): string {
  const from = Object.fromEntries(
    Object.entries(o.from ?? {}).map(([k, dir]) => [
      k,
      sha256(fs.readFileSync(path.join(labPath(dir!), 'weights.safetensors'))),
    ]),
  );
  const gallery = o.gallery ?? 256;
  const parts = { v: MANIFEST_VERSION, configs, from, gallery, tasks: EXPLORE_TASKS };
  return sha256(JSON.stringify(parts)).slice(0, 16);
}

/** Is the manifest in `dir` current for `key`, with every file it names present? */
function isCurrent(dir: string, key: string): boolean {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) return false;
  const m = readJson(file) as Manifest;
  const files = [m.gallery.file, m.support.file, ...m.models.map((x) => x.file)];
  return m.key === key && files.every((f) => fs.existsSync(path.join(dir, f)));
}

/** Display names of a scene's attributes. */
function attributesOf(s: Scene): Record<string, string> {
  const a: Record<string, string> = {
    kind: s.kind,
    object: s.kind === 'shape' ? SHAPES[s.shape] : GARMENTS[s.garment],
    colour: COLOURS[s.colour],
    size: SIZES[s.size],
  };
  if (s.texture >= 0) a.texture = TEXTURES[s.texture];
  if (s.kind === 'shape') a.count = COUNTS[s.count - 1];
  if (s.position >= 0) a.position = POSITIONS[s.position];
  return a;
}

/** A scene's class in each explorer task (lib/data/tasks.ts class orders), null where none. */
function labelsOf(s: Scene): Record<string, number | null> {
  const shape = s.kind === 'shape';
  return {
    shape: shape ? s.shape : null,
    colour: s.colour,
    size: s.size,
    texture: s.texture >= 0 ? s.texture : null,
    count: shape ? s.count - 1 : null,
    position: s.position >= 0 ? s.position : null,
    garment: shape ? null : s.garment,
  };
}

function galleryOf(world: World, n: number): { items: GalleryItem[]; pixels: Uint8Array } {
  const scenes = world.scenes('test').slice(0, n);
  if (scenes.length < n)
    throw new Error(`explore: the world has ${scenes.length} test scenes, asked ${n}`);
  const batch = world.batchFromScenes(scenes, new Rng(CAPTION_SEED));
  const items = scenes.map((s, i) => ({
    caption: batch.captions[i],
    identity: batch.identity![i],
    attributes: attributesOf(s),
    labels: labelsOf(s),
  }));
  return { items, pixels: pixelsToBytes(batch.images) };
}

function supportOf(tasks: Task[]) {
  let first = 0;
  const chosen = EXPLORE_TASKS.map((name) => {
    const t = tasks.find((x) => x.name === name);
    if (!t) throw new Error(`explore: no task '${name}' in the suite`);
    return t;
  });
  const entries = chosen.map((t) => {
    const e = {
      name: t.name,
      description: t.description,
      classNames: t.classNames,
      templates: t.templates,
      first,
      count: t.support.size,
      labels: Array.from(t.support.labels),
    };
    first += t.support.size;
    return e;
  });
  const pixels = new Uint8Array(first * PIXELS);
  chosen.forEach((t, i) => {
    pixels.set(pixelsToBytes(t.support.images), entries[i].first * PIXELS);
  });
  return { entries, pixels, count: first };
}

/** A run folder holding this config's finished weights, trained now if needed. */
function ensureRun(
  key: ExploreModelKey,
  cfg: ExperimentConfig,
  o: ExploreAssetOptions,
  world: World,
): { dir: string; trainSeconds: number | null } {
  const given = o.from?.[key];
  if (given) return { dir: labPath(given), trainSeconds: null };
  const dir = path.join(labPath(o.runsDir), `${cfg.name}-${key}`);
  const cfgFile = path.join(dir, 'config.json');
  const done =
    fs.existsSync(path.join(dir, 'weights.safetensors')) &&
    fs.existsSync(cfgFile) &&
    JSON.stringify(readJson(cfgFile)) === JSON.stringify(cfg);
  if (done) {
    o.log?.(`explore: reusing ${path.relative(process.cwd(), dir)}`);
    return { dir, trainSeconds: null };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  o.log?.(`explore: training ${MODEL_LABELS[key]} (${cfg.name}, ${cfg.steps} steps)…`);
  const run = trainExperiment(cfg, {
    outDir: dir,
    data: { world, tasks: [] }, // the world only: no evaluation during training
    evalDuringTraining: false,
    quiet: !o.log,
  });
  disposeModel(run.model);
  return { dir, trainSeconds: run.trainSeconds };
}

/** The manifest entry of a finished run; its weights are loaded once here as a check. */
function modelEntry(
  key: ExploreModelKey,
  run: { dir: string; trainSeconds: number | null },
  world: World,
  outDir: string,
): ManifestModel {
  const cfg = readJson(path.join(run.dir, 'config.json')) as ExperimentConfig;
  if (cfg.objective.name !== key)
    throw new Error(`explore: ${run.dir} trained '${cfg.objective.name}', expected '${key}'`);
  const model = resolveModelConfig(cfg, world);
  const m = createModel(model, cfg.objective, world.tokenizer.END, cfg.seed);
  const src = path.join(run.dir, 'weights.safetensors');
  loadWeights(src, m.params);
  disposeParams(m.params);
  const file = `${key}.safetensors`;
  fs.copyFileSync(src, path.join(outDir, file));
  const final = readJson(path.join(run.dir, 'final.json'));
  return {
    key,
    label: MODEL_LABELS[key],
    file,
    bytes: fs.statSync(src).size,
    model,
    objective: cfg.objective,
    endId: world.tokenizer.END,
    preset: cfg.name,
    steps: final.step,
    seed: cfg.seed,
    trainSeconds: run.trainSeconds,
    finalLoss: final.loss,
  };
}

/** Write (or keep, when current) the explorer's assets; returns the manifest. */
export async function writeExploreAssets(
  o: ExploreAssetOptions,
): Promise<{ manifest: Manifest; skipped: boolean }> {
  const outDir = labPath(o.outDir);
  const configs = exploreConfigs(o);
  const key = assetKey(o, configs);
  if (!o.force && isCurrent(outDir, key)) {
    o.log?.(`explore: assets in ${path.relative(process.cwd(), outDir)} are current (${key})`);
    return { manifest: readJson(path.join(outDir, 'manifest.json')), skipped: true };
  }
  await initBackend();
  const world = createWorld(configs.siglip.world);
  fs.mkdirSync(outDir, { recursive: true });
  const models = EXPLORE_MODELS.map((k) =>
    modelEntry(k, ensureRun(k, configs[k], o, world), world, outDir),
  );
  const gallery = galleryOf(world, o.gallery ?? 256);
  const support = supportOf(
    buildTaskSuite(world, { queryPerClass: 0, supportPerClass: SUPPORT_PER_CLASS }),
  );
  writeAtomic(path.join(outDir, 'gallery.u8'), Buffer.from(gallery.pixels));
  writeAtomic(path.join(outDir, 'support.u8'), Buffer.from(support.pixels));
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    key,
    createdAt: new Date().toISOString(),
    commit: gitCommit(),
    world: {
      seed: world.config.seed,
      contextLength: world.tokenizer.contextLength,
      vocabSize: world.tokenizer.vocabSize,
    },
    imageSize: 32,
    gallery: { file: 'gallery.u8', count: gallery.items.length, items: gallery.items },
    support: { file: 'support.u8', count: support.count, perClass: SUPPORT_PER_CLASS },
    tasks: support.entries,
    models,
  };
  writeAtomic(path.join(outDir, 'manifest.json'), `${JSON.stringify(manifest)}\n`);
  return { manifest, skipped: false };
}

/** `--from siglip=dir` pairs. */
function parseFrom(list: string[] = []): Partial<Record<ExploreModelKey, string>> {
  const out: Partial<Record<ExploreModelKey, string>> = {};
  for (const item of list) {
    const [k, dir] = item.split('=');
    if (!(EXPLORE_MODELS as readonly string[]).includes(k) || !dir)
      throw new Error(`--from ${item}: expected <${EXPLORE_MODELS.join('|')}>=<run dir>`);
    out[k as ExploreModelKey] = dir;
  }
  return out;
}

/** Options of the asset step from a command line (shared with scripts/explore.ts). */
export function assetOptions(
  argv: string[],
): ExploreAssetOptions & { rest: Record<string, unknown> } {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string', default: 'lab' },
      steps: { type: 'string' },
      out: { type: 'string' },
      runs: { type: 'string', default: 'out/explore/runs' },
      from: { type: 'string', multiple: true },
      force: { type: 'boolean', default: false },
      'build-only': { type: 'boolean', default: false },
      port: { type: 'string', default: '5173' },
      host: { type: 'string', default: '127.0.0.1' },
      site: { type: 'string', default: 'out/explore/site' },
      screenshots: { type: 'string' },
    },
  });
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  if (steps !== undefined && !(Number.isInteger(steps) && steps >= 1))
    throw new Error(`--steps must be an integer >= 1, got '${values.steps}'`);
  return {
    preset: values.preset!,
    steps,
    outDir: values.out ?? `out/explore/data-${values.preset}`,
    runsDir: values.runs!,
    from: parseFrom(values.from),
    force: values.force,
    log: (line) => console.log(line),
    rest: values,
  };
}

if (require.main === module) {
  const t0 = performance.now();
  writeExploreAssets(assetOptions(process.argv.slice(2)))
    .then(({ skipped }) => {
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(`explore: assets ${skipped ? 'current' : 'written'} in ${s} s`);
    })
    .catch((e) => {
      console.error(`explore: ${(e as Error).message}`);
      process.exit(1);
    });
}
