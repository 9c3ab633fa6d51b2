#!/usr/bin/env node
/**
 * Builds the optional native addon into build/native/addon.node: the lab's
 * matmul, row, copy and fused kernels for the wasm backend (matmul.h,
 * rowops.h, copyops.h, fusedops.h, attention.h, llipops.h, lixpops.h, denseops.h, lossops.h,
 * probeops.h, blockops.h), compiled through their Node-API layer
 * lib/backend/native/addon.c, the one source file. Matmuls go through
 * OpenBLAS, and through oneDNN too when libdnnl-dev is installed. Runs as the
 * package's `install` script, so it must never fail `npm ci`: when the
 * compiler, the Node headers or OpenBLAS is missing it prints one line and
 * the lab falls back to plain wasm kernels.
 *
 * We call the C compiler directly instead of node-gyp: one source file, one
 * or two libraries, no Python, and it builds offline in about a second.
 */

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const source = path.join(root, 'lib', 'backend', 'native', 'addon.c');
const outDir = path.join(root, 'build', 'native');
const target = path.join(outDir, 'addon.node');

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
    `[lab] native kernels not built (${reason}); the lab will fall back to plain wasm. ` +
      'To enable it: apt-get install -y gcc libopenblas-dev libnode-dev, then node scripts/build-native.js',
  );
  process.exit(0);
}

/**
 * The addon is built on the machine that runs it (npm's install step), so it
 * may use every instruction the CPU has: -march=native (AVX-512 here doubles
 * the elementwise kernels over SSE). A compiler that rejects it gets
 * x86-64-v2. -ffp-contract=off: no FMA contraction, so the fused kernels give
 * the same bits as the TF.js ops they replace.
 */
function compile(cc, include, march, dnnl) {
  const tmp = `${target}.${process.pid}.tmp`;
  const args = ['-O3', '-ffp-contract=off', ...march, '-shared', '-fPIC', `-I${include}`, source];
  if (dnnl) args.push('-DLAB_DNNL', '-fopenmp', '-ldnnl');
  args.push('-lopenblas', '-o', tmp);
  const res = spawnSync(cc, args, { encoding: 'utf8' });
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

/** Whether oneDNN's C header is installed (Debian libdnnl-dev). */
function hasDnnl() {
  return ['/usr/include/dnnl.h', '/usr/local/include/dnnl.h'].some((f) => fs.existsSync(f));
}

function main() {
  if (process.env.LAB_NATIVE === '0') giveUp('LAB_NATIVE=0');
  if (process.platform !== 'linux') giveUp(`unsupported platform ${process.platform}`);
  const include = findNodeHeaders();
  if (!include) giveUp('Node headers (node_api.h) not found');
  const cc = process.env.CC || 'cc';
  fs.mkdirSync(outDir, { recursive: true });
  const marches = process.arch === 'x64' ? [['-march=native'], ['-march=x86-64-v2'], []] : [[]];
  // oneDNN's sgemm when Debian's libdnnl-dev is there (AVX-512 aware); OpenBLAS alone otherwise.
  const dnnlOptions = hasDnnl() ? [true, false] : [false];
  let err = null;
  let dnnl = false;
  search: for (const withDnnl of dnnlOptions) {
    for (const march of marches) {
      err = compile(cc, include, march, withDnnl);
      dnnl = withDnnl;
      if (!err || /cblas|openblas|no C compiler/i.test(err)) break search;
    }
  }
  if (err) {
    const hint = /cblas|openblas/i.test(err) ? 'OpenBLAS missing: libopenblas-dev' : err;
    giveUp(`${cc} failed: ${hint}`);
  }
  const gemm = dnnl
    ? 'oneDNN + OpenBLAS'
    : 'OpenBLAS (no libdnnl-dev: matmuls ~2x slower on AVX-512 CPUs)';
  console.log(`[lab] native kernels built (${gemm}): ${path.relative(root, target)}`);
}

main();
