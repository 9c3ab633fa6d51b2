#!/usr/bin/env node
/**
 * Builds the optional OpenBLAS matmul addon (lib/backend/native/blas.c) into
 * build/native/blas.node. Runs as the package's `install` script, so it must
 * never fail `npm ci`: when the compiler, the Node headers or OpenBLAS is
 * missing it prints one line and the lab falls back to plain wasm kernels.
 *
 * We call the C compiler directly instead of node-gyp: one file, one library,
 * no Python, and it builds offline in about a second.
 */

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const source = path.join(root, 'lib', 'backend', 'native', 'blas.c');
const outDir = path.join(root, 'build', 'native');
const target = path.join(outDir, 'blas.node');

/** First directory holding node_api.h: an override, the running node's own prefix, then /usr. */
function findNodeHeaders() {
  const candidates = [
    process.env.LAB_NODE_INCLUDE,
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find((dir) => dir && fs.existsSync(path.join(dir, 'node_api.h')));
}

/** Says why the addon is not built and how to get it; exits 0 so installs go on. */
function giveUp(reason) {
  console.log(
    `[lab] native matmul not built (${reason}); the lab will fall back to plain wasm. ` +
      'To enable it: apt-get install -y gcc libopenblas-dev libnode-dev, then node scripts/build-native.js',
  );
  process.exit(0);
}

function compile(cc, include) {
  const tmp = `${target}.${process.pid}.tmp`;
  const args = ['-O3', '-march=x86-64-v2', '-shared', '-fPIC', `-I${include}`, source];
  args.push('-lopenblas', '-o', tmp);
  // -march=x86-64-v2 only where it means something; other CPUs get the compiler default.
  const flags = process.arch === 'x64' ? args : args.filter((a) => !a.startsWith('-march'));
  const res = spawnSync(cc, flags, { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    fs.rmSync(tmp, { force: true });
    if (res.error) return res.error.code === 'ENOENT' ? `no C compiler ${cc}` : res.error.message;
    const err = res.stderr
      .trim()
      .split('\n')
      .find((l) => /error/i.test(l));
    return err || `exit ${res.status}`;
  }
  fs.renameSync(tmp, target);
  return null;
}

function main() {
  if (process.env.LAB_NATIVE === '0') giveUp('LAB_NATIVE=0');
  if (process.platform !== 'linux') giveUp(`unsupported platform ${process.platform}`);
  const include = findNodeHeaders();
  if (!include) giveUp('Node headers (node_api.h) not found');
  const cc = process.env.CC || 'cc';
  fs.mkdirSync(outDir, { recursive: true });
  const err = compile(cc, include);
  if (err) {
    const hint = /cblas|openblas/i.test(err) ? 'OpenBLAS missing: libopenblas-dev' : err;
    giveUp(`${cc} failed: ${hint}`);
  }
  console.log(`[lab] native matmul built: ${path.relative(root, target)}`);
}

main();
