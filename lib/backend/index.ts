/**
 * Picks the fastest TF.js backend that loads on this machine and says which
 * one in a single line, so every notebook and run log records what it ran on.
 *
 * Order: tfjs-node-gpu > tfjs-node > wasm (+ native kernels when the addon is
 * built: oneDNN or OpenBLAS matmuls, see backend/native.ts) > cpu. The native
 * bindings of tfjs-node rarely install (they download libtensorflow), so wasm +
 * native kernels is the usual path (bench/README.md has the numbers).
 *
 * Env: LAB_BACKEND=tensorflow|wasm|cpu forces one; LAB_NATIVE=0 keeps the stock
 * wasm kernels; LAB_THREADS=n sets the thread count (default: every core,
 * backend/threads.ts); LAB_GEMM=openblas
 * uses OpenBLAS even when oneDNN is built in; LAB_EARLY_FREE=0 keeps TF.js's own
 * backprop instead of the one that frees as it goes (backend/backprop.ts). Options
 * passed in code win over the env.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installBackprop } from './backprop';
import { registerNativeKernels } from './native';
import { cores, defaultThreads } from './threads';

export type BackendChoice = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** TF.js backend name: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  /** True when matmuls run in native code (tfjs-node or the OpenBLAS addon). */
  native: boolean;
  /** Threads doing the matmuls. */
  threads: number;
  /** The line printed at start-up, without the `[lab] backend: ` prefix. */
  description: string;
}

export interface BackendOptions {
  force?: BackendChoice;
  native?: boolean;
}

let pending: Promise<BackendInfo> | null = null;
let info: BackendInfo | null = null;

/** The backend chosen by `initBackend`, or null before it ran. */
export function backendInfo(): BackendInfo | null {
  return info;
}

/**
 * Sets up the best backend once per process and prints one line about it.
 * Later calls return the same info without printing, whatever their options.
 */
export function initBackend(opts: BackendOptions = {}): Promise<BackendInfo> {
  if (!pending) {
    pending = choose(opts).then((chosen) => {
      info = chosen;
      if (process.env.LAB_EARLY_FREE !== '0') installBackprop();
      console.log(`[lab] backend: ${chosen.description}`);
      return chosen;
    });
    // A failed forced backend should not poison later calls with other options.
    pending.catch(() => {
      pending = null;
    });
  }
  return pending;
}

function forcedChoice(opts: BackendOptions): BackendChoice | undefined {
  if (opts.force) return opts.force;
  const env = process.env.LAB_BACKEND;
  if (!env) return undefined;
  if (env === 'tensorflow' || env === 'wasm' || env === 'cpu') return env;
  throw new Error(`LAB_BACKEND=${env}: expected tensorflow, wasm or cpu`);
}

async function choose(opts: BackendOptions): Promise<BackendInfo> {
  const forced = forcedChoice(opts);
  const order: BackendChoice[] = forced ? [forced] : ['tensorflow', 'wasm', 'cpu'];
  const failures: string[] = [];
  for (const choice of order) {
    try {
      return await SETUP[choice](opts);
    } catch (e) {
      failures.push(`${choice}: ${firstLine(e)}`);
    }
  }
  throw new Error(`[lab] no TF.js backend could start (${failures.join('; ')})`);
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0];
}

const SETUP: Record<BackendChoice, (opts: BackendOptions) => Promise<BackendInfo>> = {
  tensorflow: setupTensorflow,
  wasm: setupWasm,
  cpu: setupCpu,
};

/** tfjs-node-gpu, then tfjs-node; each registers backend 'tensorflow' on require. */
async function setupTensorflow(): Promise<BackendInfo> {
  let pkg = '';
  const errors: string[] = [];
  for (const candidate of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      checkBinding(candidate);
      require(candidate);
      pkg = candidate;
      break;
    } catch (e) {
      errors.push(`${candidate}: ${firstLine(e)}`);
    }
  }
  if (!pkg) throw new Error(errors.join('; '));
  await activate('tensorflow');
  const threads = cores();
  return { name: 'tensorflow', native: true, threads, description: `tensorflow (${pkg})` };
}

/**
 * Throws unless the package's libtensorflow binding is on disk. Requiring a
 * package without it registers all its kernels before failing, and the next
 * candidate then prints hundreds of "already registered" warnings.
 */
function checkBinding(pkg: string): void {
  const dir = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'lib');
  const napi = fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => d.startsWith('napi-v')) : [];
  if (!napi.some((d) => fs.existsSync(path.join(dir, d, 'tfjs_binding.node')))) {
    throw new Error('native binding (tfjs_binding.node) not installed');
  }
}

async function setupWasm(opts: BackendOptions): Promise<BackendInfo> {
  require('@tensorflow/tfjs-backend-wasm');
  await activate('wasm');
  const wantNative = opts.native ?? process.env.LAB_NATIVE !== '0';
  if (!wantNative) {
    return { name: 'wasm', native: false, threads: 1, description: 'wasm (native kernels off)' };
  }
  const threads = defaultThreads(); // every core unless LAB_THREADS says (backend/threads.ts)
  try {
    const version = registerNativeKernels(threads);
    const gemm = version.includes('oneDNN') ? 'oneDNN' : 'OpenBLAS';
    const description = `wasm + native kernels, ${gemm} sgemm (${threads} thread${threads > 1 ? 's' : ''})`;
    return { name: 'wasm', native: true, threads, description };
  } catch (e) {
    const reason = firstLine(e).replace(/^\[lab\] native matmul: /, '');
    return {
      name: 'wasm',
      native: false,
      threads: 1,
      description: `wasm (native matmul unavailable: ${reason})`,
    };
  }
}

async function setupCpu(): Promise<BackendInfo> {
  await activate('cpu');
  return { name: 'cpu', native: false, threads: 1, description: 'cpu' };
}

/** setBackend resolves false (not throws) when a backend fails to initialise. */
async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
}
