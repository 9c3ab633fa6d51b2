/**
 * The explorer's build (Vite): a static site with relative URLs, so the folder
 * can be served by `npm run explore` or copied to any static host. TF.js's
 * wasm binaries are imported with `?url` (explore/src/backend.ts) and emitted
 * as files beside the bundle; the lab's data (weights, pixels, manifest) is
 * copied into <site>/data/ after the build by scripts/explore.ts.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../out/explore/site', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0, // the wasm binaries stay files
    chunkSizeWarningLimit: 4096, // TF.js is one large chunk; fine for a page loaded once
    sourcemap: false,
  },
  server: { host: '127.0.0.1' },
});
