/**
 * Driving the explorer in Debian's Chromium with playwright-core (no browser
 * download): the browser tests (test/explore.test.ts) and the README
 * screenshots (`npm run explore -- --screenshots docs`) share these helpers.
 * Every request that leaves the page's origin is recorded and aborted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import type { ExploreState } from '../explore/src/state';

/** The page's global, as page.evaluate callbacks see it (scripts have no DOM types). */
declare const window: { __explore: ExploreState };

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Root in a container needs --no-sandbox; the rest keep Chromium from calling
 * home (updates, sync, field trials), which a closed network answers with a
 * storm of refused connections.
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const VIEW_IDS = ['caption', 'fewshot', 'lixp', 'llip', 'spectra'] as const;

export interface Browser {
  context: BrowserContext;
  close: () => Promise<void>;
}

/** Chromium with a fresh, temporary profile (--user-data-dir), removed on close. */
export async function launchBrowser(
  o: { viewport?: { width: number; height: number }; deviceScaleFactor?: number } = {},
): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM_PATH)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: o.viewport ?? { width: 1600, height: 1000 },
    deviceScaleFactor: o.deviceScaleFactor ?? 1,
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What a page did that it should not: console errors, uncaught errors, requests elsewhere. */
export interface Watch {
  errors: string[];
  foreign: string[];
}

/**
 * Opens the explorer at `url` (+ `query`) in a new page, records console errors
 * and every request outside `url`'s origin (aborted), and waits until the page
 * says it is ready (or failed). Returns the page and what was recorded.
 */
export async function openExplorer(
  b: Browser,
  url: string,
  query = '',
  timeoutMs = 60_000,
): Promise<{ page: Page; watch: Watch }> {
  const origin = new URL(url).origin;
  const watch: Watch = { errors: [], foreign: [] };
  const page = await b.context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') watch.errors.push(m.text());
  });
  page.on('pageerror', (e) => watch.errors.push(e.message));
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(`${origin}/`) || u.startsWith('data:') || u.startsWith('blob:'))
      return route.continue();
    watch.foreign.push(u);
    return route.abort();
  });
  await page.goto(`${url}${query}`);
  await page.waitForFunction(() => window.__explore?.ready || window.__explore?.error, null, {
    timeout: timeoutMs,
  });
  const error = await page.evaluate(() => window.__explore.error);
  if (error) throw new Error(`the explorer failed to start: ${error}`);
  return { page, watch };
}

/** How many times a view has reported results (0: not built yet). */
export const viewVersion = (page: Page, id: string) =>
  page.evaluate((v) => window.__explore.versions[v] ?? 0, id);

/** Clicks a view's tab and waits until the view has computed something. */
export async function showView(page: Page, id: string): Promise<void> {
  await page.click(`#tab-${id}`);
  await page.waitForFunction((v) => (window.__explore.versions[v] ?? 0) > 0, id);
}

/** Waits until view `id` reports a version above `after` (after an input). */
export async function nextReport(page: Page, id: string, after: number): Promise<void> {
  await page.waitForFunction(
    ([v, n]) => (window.__explore.versions[v as string] ?? 0) > (n as number),
    [id, after],
  );
}

/** A full-page screenshot of every view, `<dir>/<prefix><view>.png`; returns the files. */
export async function screenshotViews(page: Page, dir: string, prefix = 'explore-') {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const id of VIEW_IDS) {
    await showView(page, id);
    const file = path.join(dir, `${prefix}${id}.png`);
    await page.screenshot({ path: file, fullPage: true });
    files.push(file);
  }
  return files;
}
