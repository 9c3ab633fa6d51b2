/**
 * `npm run explore`: the web explorer (explore/) for a class. Makes the assets
 * when they are not current (scripts/explore-assets.ts: trains or reuses the
 * four models), builds the static site with Vite into out/explore/site, copies
 * the assets into its data/ folder, and serves it on localhost.
 *
 *   npm run explore                              lab-preset models (minutes the first time), serve
 *   npm run explore -- --build-only              build and stop (CI; copy out/explore/site anywhere)
 *   npm run explore -- --preset tiny --steps 30  seconds-old models, for a quick look
 *   npm run explore -- --port 8080 --from siglip=out/runs/01-siglip …
 *   npm run explore -- --screenshots docs        a screenshot of every view (the README's)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { labPath, repoRoot } from '../lib/paths';
import { assetOptions, writeExploreAssets } from './explore-assets';
import { launchBrowser, openExplorer, screenshotViews } from './explore-browser';

/** Builds the page (Vite, in a child process: Vite is ESM-only) into `outDir`; returns seconds. */
export function buildSite(outDir: string): number {
  const t0 = performance.now();
  const root = repoRoot();
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, 'node_modules/vite/bin/vite.js'),
      'build',
      '--config',
      path.join(root, 'explore/vite.config.mts'),
      '--outDir',
      outDir,
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, VITE_CJS_IGNORE_WARNING: 'true' } },
  );
  if (r.status !== 0) throw new Error(`vite build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

/** Copies the assets folder into <site>/data (replacing what was there). */
export function copyAssets(assetsDir: string, siteDir: string): void {
  const dest = path.join(siteDir, 'data');
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(assetsDir, dest, { recursive: true });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * A static file server for `dir` on `host:port` (port 0: any free one): GET and
 * HEAD only, paths resolved inside `dir`, .wasm as application/wasm (streaming
 * compilation needs it). Resolves once listening.
 */
export function serveStatic(dir: string, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = path.resolve(root, `.${rel}`);
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory())
      file = path.join(file, 'index.html');
    if (!fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    const body = fs.readFileSync(file);
    res.writeHead(200, {
      'content-type': type,
      'content-length': body.length,
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

export function serverUrl(server: http.Server): string {
  const a = server.address() as AddressInfo;
  return `http://${a.address}:${a.port}/`;
}

/** Serves the site on a free port and writes a screenshot of every view into `dir`. */
async function screenshots(site: string, dir: string): Promise<number> {
  const server = await serveStatic(site, 0);
  // laid out at 1600 CSS px, saved at 1000 px wide: the README shows them scaled down anyway
  const browser = await launchBrowser({ deviceScaleFactor: 0.625 });
  try {
    const { page, watch } = await openExplorer(browser, serverUrl(server));
    const files = await screenshotViews(page, dir);
    if (watch.errors.length || watch.foreign.length)
      throw new Error(`the page misbehaved: ${JSON.stringify(watch)}`);
    console.log(
      `explore: screenshots ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`,
    );
    return 0;
  } finally {
    await browser.close();
    server.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const o = assetOptions(argv);
  const t0 = performance.now();
  const { skipped } = await writeExploreAssets(o);
  const assetSeconds = (performance.now() - t0) / 1000;
  console.log(`explore: assets ${skipped ? 'current' : `written in ${assetSeconds.toFixed(1)} s`}`);
  const site = labPath(String(o.rest.site));
  const buildSeconds = buildSite(site);
  copyAssets(labPath(o.outDir), site);
  console.log(
    `explore: site built in ${buildSeconds.toFixed(1)} s → ${path.relative(process.cwd(), site)}`,
  );
  if (o.rest['build-only']) return 0;
  if (o.rest.screenshots) return screenshots(site, labPath(String(o.rest.screenshots)));
  const server = await serveStatic(site, Number(o.rest.port), String(o.rest.host));
  console.log(`explore: serving ${serverUrl(server)}  (Ctrl-C stops)`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  server.close();
  return 0;
}

if (require.main === module)
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`explore: ${(e as Error).message}`);
      process.exit(1);
    },
  );
