/**
 * The web explorer (explore/, issue 18) in a real browser: tiny models trained
 * here in seconds (scripts/explore-assets.ts, reused while current), the site
 * built with Vite and served on 127.0.0.1, Debian's Chromium driven by
 * playwright-core. Checks: no console errors and no request leaving localhost;
 * a typed caption's scores equal the lab's Node-side scores for the same
 * weights and pixels; the Llip view's mixing weights follow the caption; LIxP's
 * attention and the spectra match Node too; keys work; the page keeps working
 * offline. Screenshots of every view land in out/explore/ for review.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Page } from 'playwright-core';
import { bytesToPixels, type Manifest, type ManifestModel } from '../explore/src/manifest';
import type { ExploreState } from '../explore/src/state';
import { createWorld } from '../lib/data/world';
import { classTexts, imageSide, scores, textSide } from '../lib/eval/evaluate';
import { mixingWeights } from '../lib/eval/mixing';
import { covarianceSpectrum, effectiveRank, spectrumFeatures } from '../lib/eval/spectrum';
import { loadWeights } from '../lib/model/safetensors';
import { lixpContext } from '../lib/objectives/lixp';
import { createModel, type Model } from '../lib/objectives/model';
import { labPath } from '../lib/paths';
import { buildSite, copyAssets, serverUrl, serveStatic } from '../scripts/explore';
import { writeExploreAssets } from '../scripts/explore-assets';
import {
  type Browser,
  launchBrowser,
  nextReport,
  openExplorer,
  screenshotViews,
  showView,
  viewVersion,
} from '../scripts/explore-browser';
import { setup } from './helpers';

declare const window: { __explore: ExploreState };

const OUT = labPath('out/explore'); // screenshots for review
const WORK = path.join(OUT, 'test'); // data, runs and site of the test
const DATA = path.join(WORK, 'data');
const SITE = path.join(WORK, 'site');

let manifest: Manifest;
let server: http.Server;
let url: string;
let browser: Browser;
let page: Page; // the wasm page most tests share
const timing: Record<string, number> = {};

const seconds = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(1));

before(async () => {
  await setup();
  let t0 = performance.now();
  ({ manifest } = await writeExploreAssets({
    preset: 'tiny',
    steps: 30,
    outDir: DATA,
    runsDir: path.join(WORK, 'runs'),
  }));
  timing.assets = seconds(t0);
  t0 = performance.now();
  buildSite(SITE);
  copyAssets(DATA, SITE);
  timing.build = seconds(t0);
  server = await serveStatic(SITE, 0);
  url = serverUrl(server);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
  tf.disposeVariables();
  console.log(`# explore timings (s): ${JSON.stringify(timing)}`);
});

/** The page's results for a view. */
const results = (p: Page, id: string) =>
  p.evaluate((v) => window.__explore.results[v], id) as Promise<Record<string, unknown>>;

/** A Node-side model from the same weights file the page loads. */
const nodeModels = new Map<string, Model>();
function nodeModel(entry: ManifestModel): Model {
  let m = nodeModels.get(entry.key);
  if (!m) {
    m = createModel(entry.model, entry.objective, entry.endId, entry.seed);
    loadWeights(path.join(DATA, entry.file), m.params);
    nodeModels.set(entry.key, m);
  }
  return m;
}

const galleryPixels = () => bytesToPixels(fs.readFileSync(path.join(DATA, 'gallery.u8')));
const tokenizer = () => createWorld({ contextLength: manifest.world.contextLength }).tokenizer;

/** max |a − b| over two equal-length lists. */
function maxDiff(a: number[], b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

/** Types into a text box and waits for the view to report the new value. */
async function typeInto(p: Page, view: string, selector: string, text: string) {
  const v = await viewVersion(p, view);
  await p.fill(selector, text);
  await nextReport(p, view, v);
}

test('the page loads with no console error and no request leaving localhost (default backend)', async () => {
  const t0 = performance.now();
  const { page: p, watch } = await openExplorer(browser, url);
  timing.loadDefault = seconds(t0);
  const backend = await p.evaluate(() => window.__explore.backend);
  assert.ok(backend === 'webgl' || backend === 'wasm', `backend ${backend}`);
  // the same caption scores on this backend (WebGL computes in float32 too, but less exactly)
  const r = await results(p, 'caption');
  const m = nodeModel(manifest.models[0]);
  const s = scores(
    m,
    imageSide(m, galleryPixels()),
    textSide(m, tokenizer().encode(r.caption as string)),
  );
  const d = maxDiff(r.scores as number[], s.dataSync());
  assert.ok(d < 2e-3, `${backend}: caption scores differ from Node by ${d}`);
  await p.screenshot({ path: path.join(OUT, `explore-${backend}.png`) });
  await p.close();
  assert.deepEqual(watch.errors, [], 'console errors');
  assert.deepEqual(watch.foreign, [], 'requests outside localhost');
  console.log(`# default backend: ${backend}, caption scores within ${d.toExponential(1)} of Node`);
});

test('a typed caption gets the scores the lab computes in Node, for every model (wasm)', async () => {
  const t0 = performance.now();
  ({ page } = await openExplorer(browser, url, '?backend=wasm'));
  timing.loadWasm = seconds(t0);
  assert.equal(await page.evaluate(() => window.__explore.backend), 'wasm');
  const caption = 'a small striped blue circle at the top left';
  const pixels = galleryPixels();
  const tok = tokenizer();
  const shape = manifest.tasks.find((t) => t.name === 'shape')!;
  for (const entry of manifest.models) {
    if ((await results(page, 'caption')).model !== entry.key) {
      const v = await viewVersion(page, 'caption');
      await page.check(`input[name="caption-model"][value="${entry.key}"]`);
      await nextReport(page, 'caption', v);
    }
    await typeInto(page, 'caption', '#caption-input', caption);
    const r = await results(page, 'caption');
    assert.equal(r.model, entry.key);
    assert.equal(r.caption, caption);
    const m = nodeModel(entry);
    const img = imageSide(m, pixels);
    const s = scores(m, img, textSide(m, tok.encode(caption))); // [N, 1]
    const d = maxDiff(r.scores as number[], s.dataSync());
    assert.ok(d < 1e-4, `${entry.key}: caption scores differ from Node by ${d}`);
    // the zero-shot scores of the image it picked, on the shape task
    const zs = r.zeroShot as { task: string; scores: number[] };
    assert.equal(zs.task, 'shape');
    const i = r.chosen as number;
    const cls = classTexts(m, tok, shape.classNames, shape.templates);
    const one = imageSide(m, pixels.subarray(i * 3072, (i + 1) * 3072));
    const z = scores(m, one, cls);
    const dz = maxDiff(zs.scores, z.dataSync());
    assert.ok(dz < 1e-4, `${entry.key}: zero-shot scores differ from Node by ${dz}`);
    tf.dispose([s, z, ...Object.values(img), ...Object.values(cls), ...Object.values(one)]);
    console.log(`# ${entry.key}: caption ${d.toExponential(1)}, zero-shot ${dz.toExponential(1)}`);
  }
  assert.deepEqual((await results(page, 'caption')).unknown, []);
  await typeInto(page, 'caption', '#caption-input', 'a purple zeppelin');
  assert.deepEqual((await results(page, 'caption')).unknown, ['zeppelin']);
  assert.match((await page.textContent('#panel-caption .warn')) ?? '', /zeppelin/);
});

test('the Llip view: mixing weights change with the caption and match Node', async () => {
  await showView(page, 'llip');
  const before = await results(page, 'llip');
  const i = before.index as number;
  await typeInto(page, 'llip', '#llip-caption-1', 'a checkered triangle in the bottom right');
  const r = await results(page, 'llip');
  const captions = r.captions as string[];
  assert.equal(captions[1], 'a checkered triangle in the bottom right');
  const phi = r.phi as number[][][]; // [caption][head][token]
  const old = (before.phi as number[][][])[1].flat();
  const moved = maxDiff(phi[1].flat(), old);
  assert.ok(moved > 1e-5, `Φ did not move with the caption (max change ${moved})`);
  for (const row of phi.flat()) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  const entry = manifest.models.find((m) => m.key === 'llip')!;
  const w = mixingWeights(
    nodeModel(entry),
    galleryPixels().subarray(i * 3072, (i + 1) * 3072),
    tokenizer().encodeBatch(captions),
  ); // [M, 2, 1, T]
  const node = w.arraySync() as number[][][][];
  w.dispose();
  const d = maxDiff(
    phi.flatMap((_, c) => node.flatMap((head) => head[c][0])),
    phi.flatMap((c) => c.flat()),
  );
  assert.ok(d < 1e-5, `Φ differs from Node by ${d}`);
  // another image: new weights for the same captions
  const v = await viewVersion(page, 'llip');
  await page.focus('#panel-llip [role="option"][aria-selected="true"]');
  await page.keyboard.press('ArrowRight');
  await nextReport(page, 'llip', v);
  assert.equal((await results(page, 'llip')).index, i + 1);
  console.log(
    `# Llip: Φ moved by up to ${moved.toFixed(4)} with caption B; Node agrees to ${d.toExponential(1)}`,
  );
});

test('LIxP attention and the spectra agree with Node; every view has a screenshot', async () => {
  await showView(page, 'lixp');
  const r = await results(page, 'lixp');
  const batch = r.batch as number[];
  const entry = manifest.models.find((m) => m.key === 'lixp')!;
  const m = nodeModel(entry);
  const cfg = entry.objective as Extract<ManifestModel['objective'], { name: 'lixp' }>;
  const side = imageSide(m, galleryPixels());
  const a = tf.tidy(() => {
    const x = tf.gather(side.image!, batch) as tf.Tensor2D;
    return lixpContext(x, m.params.logTauCtx as tf.Scalar, cfg).attention;
  });
  const att = r.attention as number[][];
  const d = maxDiff(att.flat(), a.dataSync());
  tf.dispose([a, ...Object.values(side)]);
  assert.ok(d < 1e-5, `attention differs from Node by ${d}`);
  att.forEach((row, k) => {
    assert.equal(row[k], 0, 'an image never attends to itself');
  });

  await showView(page, 'spectra');
  const sp = (await results(page, 'spectra')).models as { key: string; effectiveRank: number }[];
  for (const { key, effectiveRank: er } of sp) {
    const f = spectrumFeatures(
      nodeModel(manifest.models.find((x) => x.key === key)!),
      galleryPixels(),
    );
    const node = effectiveRank(covarianceSpectrum(f));
    f.dispose();
    assert.ok(Math.abs(er - node) < 1e-3 * node, `${key}: effective rank ${er} vs Node ${node}`);
  }
  const files = await screenshotViews(page, OUT);
  for (const f of files) assert.ok(fs.statSync(f).size > 10_000, `${f} looks empty`);
  console.log(`# screenshots: ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
});

test('keyboard: digits switch views, arrows move through tabs and the gallery', async () => {
  await page.click('h1'); // focus outside any text box
  await page.keyboard.press('2');
  assert.equal(await page.evaluate(() => window.__explore.view), 'fewshot');
  await page.keyboard.press('ArrowRight'); // the focused tab list
  assert.equal(await page.evaluate(() => window.__explore.view), 'lixp');
  await page.keyboard.press('2');
  const v = await viewVersion(page, 'fewshot');
  await page.focus('#panel-fewshot [role="option"][aria-selected="true"]');
  await page.keyboard.press('ArrowDown'); // one row of 16 down
  await nextReport(page, 'fewshot', v);
  assert.equal((await results(page, 'fewshot')).index, 16);
});

test('offline once loaded: no network, the views still compute, no tensor leaks', async () => {
  await browser.context.setOffline(true);
  try {
    await page.keyboard.press('1');
    await typeInto(page, 'caption', '#caption-input', 'two large green hearts');
    const r = await results(page, 'caption');
    assert.equal(r.caption, 'two large green hearts');
    assert.equal((r.scores as number[]).length, manifest.gallery.count);
    // and no tensor is left behind by a caption (the class texts are cached on first use)
    const tensors = () => page.evaluate(() => window.__explore.tensors);
    const before = await tensors();
    assert.equal(typeof before, 'number');
    await typeInto(page, 'caption', '#caption-input', 'a tiny yellow sneaker');
    assert.equal(await tensors(), before, 'tensors leaked by one caption');
  } finally {
    await browser.context.setOffline(false);
  }
});
