/**
 * Native kernels for the TF.js wasm backend (see shared facts/speed.md).
 *
 * Everything stays on the wasm backend; only `BatchMatMul`, `_FusedMatMul`,
 * `Sum` (leading or trailing axes), `Sigmoid`, `Softmax` and the data-movement
 * kernels `Transpose`, `Slice`, `SplitV`, `Concat` are swapped for kernels that
 * call the C addon (lib/backend/native/addon.c with matmul.h, rowops.h/.ts, copyops.h/.ts)
 * directly on the wasm heap, so no tensor is copied to or from it. Gradients
 * run through the same kernels. The stock kernels are kept and used for every
 * case we do not handle. KernelOptions (or LAB_GEMM, LAB_NATIVE_ROWOPS=0,
 * LAB_NATIVE_COPY=0, LAB_NATIVE_FUSED=0, LAB_NATIVE_ATTN=0, LAB_NATIVE_LLIP=0, LAB_NATIVE_MULTI_ADAMW=0, LAB_NATIVE_LIXP=0,
 * LAB_NATIVE_DENSE=0, LAB_NATIVE_BLOCK=0) switch sets off for before/after
 * measurements; the matmuls stay native.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { COPY_KERNELS, type CopyAddon } from './native/copyops';
import {
  ADAMW_MULTI_KERNELS,
  ATTENTION_KERNELS,
  BLOCK_KERNELS,
  DENSE_KERNELS,
  EMBED_KERNELS,
  FUSED_KERNELS,
  type FusedAddon,
  LIXP_KERNELS,
  LLIP_KERNELS,
  LOSS_KERNELS,
  POOL_KERNELS,
} from './native/fused';
import { offsetOf, ROW_KERNELS, type RowAddon, type WasmBackend } from './native/rowops';
import { boundOpenMpSpin } from './threads';

/** The addon's exports; numbers are float offsets into the heap, booleans are 0/1. */
export interface BlasAddon extends RowAddon, CopyAddon, FusedAddon {
  sgemm(heap: Float32Array, ...args: number[]): void;
  setThreads(n: number): void;
  /** 'dnnl' or 'openblas'; false when the addon was built without oneDNN */
  setGemm(name: 'dnnl' | 'openblas'): boolean;
  getThreads(): number;
  version(): string;
  /** the linear probe's fits (probeops.h): heap, 10 offsets, S, E, C, J, steps */
  probeFit?(heap: Float32Array, ...args: number[]): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** One strided batch of row-major matmuls: C[i] = op(A[i]) op(B[i]). */
interface GemmPlan {
  outShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
}

/** Float strides of a bias broadcast against [batch, M, N]. */
interface BiasPlan {
  batch: number;
  row: number;
  col: number;
}

const ACT_LINEAR = 0;
const ACT_RELU = 1;
/** Fused activations the addon lacks, applied afterwards by the stock wasm kernel. */
const ACTIVATION_KERNELS = new Map([
  ['relu6', 'Relu6'],
  ['elu', 'Elu'],
  ['sigmoid', 'Sigmoid'],
  ['leakyrelu', 'LeakyRelu'],
  ['prelu', 'Prelu'],
]);

let addonCache: { addon: BlasAddon } | { error: string } | null = null;
let stock: Map<string, tf.KernelConfig> | null = null;

/**
 * build/native/addon.node above this file. We walk up from the real path so it
 * is found from lib/, from the notebooks/lib symlink and from a notebook's cwd.
 */
export function addonPath(): string | null {
  const starts = [fs.realpathSync(__dirname), process.cwd()];
  for (const start of starts) {
    let dir = start;
    for (let up = 0; up < 5; up++) {
      const file = path.join(dir, 'build', 'native', 'addon.node');
      if (fs.existsSync(file)) return file;
      dir = path.dirname(dir);
    }
  }
  return null;
}

/** Loads the addon once; returns it, or why it cannot be used. */
export function loadAddon(): { addon: BlasAddon } | { error: string } {
  if (addonCache) return addonCache;
  const file = addonPath();
  if (!file) {
    addonCache = { error: 'addon not built; run node scripts/build-native.js' };
    return addonCache;
  }
  try {
    boundOpenMpSpin(); // before OpenMP loads with the addon (backend/threads.ts)
    addonCache = { addon: require(file) as BlasAddon };
  } catch (e) {
    addonCache = { error: `cannot load ${file}: ${(e as Error).message.split('\n')[0]}` };
  }
  return addonCache;
}

function mustAddon(): BlasAddon {
  const loaded = loadAddon();
  if ('error' in loaded) throw new Error(`[lab] native matmul: ${loaded.error}`);
  return loaded.addon;
}

/** Plans a matmul, or null when the batch dims need general broadcasting. */
function planMatMul(a: number[], b: number[], ta: boolean, tb: boolean): GemmPlan | null {
  const ra = a.length;
  const rb = b.length;
  if (ra < 2 || rb < 2) return null;
  const m = ta ? a[ra - 1] : a[ra - 2];
  const k = ta ? a[ra - 2] : a[ra - 1];
  const n = tb ? b[rb - 2] : b[rb - 1];
  if (k !== (tb ? b[rb - 1] : b[rb - 2])) return null;
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(a.slice(0, -2), b.slice(0, -2));
  } catch {
    return null;
  }
  const batch = tf.util.sizeFromShape(outer);
  const batchA = tf.util.sizeFromShape(a.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.slice(0, -2));
  // Equal sizes mean equal layouts (broadcasting only expands 1s); [2,1]x[1,3] is left to stock.
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return null;
  const strideA = batchA === 1 ? 0 : m * k;
  const strideB = batchB === 1 ? 0 : k * n;
  return { outShape: [...outer, m, n], batch, m, n, k, strideA, strideB };
}

/** Strides of a bias against the kernel's [batch, M, N] output, or null. */
function planBias(shape: number[], g: GemmPlan): BiasPlan | null {
  const r = shape.length;
  const bm = r >= 2 ? shape[r - 2] : 1;
  const bn = r >= 1 ? shape[r - 1] : 1;
  const outer = tf.util.sizeFromShape(shape.slice(0, -2));
  if ((bm !== 1 && bm !== g.m) || (bn !== 1 && bn !== g.n)) return null;
  if (outer !== 1 && outer !== g.batch) return null;
  return { batch: outer === 1 ? 0 : bm * bn, row: bm === 1 ? 0 : bn, col: bn === 1 ? 0 : 1 };
}

/** Allocates the output and runs the addon's strided-batch sgemm into it. */
function runGemm(
  backend: WasmBackend,
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo },
  attrs: { ta: boolean; tb: boolean; act: number },
  g: GemmPlan,
  bias: BiasPlan | null,
): tf.TensorInfo {
  const out = backend.makeOutput(g.outShape, 'float32');
  if (tf.util.sizeFromShape(g.outShape) === 0) return out;
  const [a, b, c] = [inputs.a, inputs.b, out].map((t) => offsetOf(backend, t));
  const biasOff = inputs.bias && bias ? offsetOf(backend, inputs.bias) : -1;
  const { batch: sb, row: sm, col: sn } = bias ?? { batch: 0, row: 0, col: 0 };
  const { ta, tb, act } = attrs;
  const sizes = [+ta, +tb, g.batch, g.m, g.n, g.k];
  const offsets = [a, g.strideA, b, g.strideB, c, biasOff, sb, sm, sn];
  try {
    // Read HEAPF32 only now: makeOutput may have grown (and replaced) the heap.
    mustAddon().sgemm(backend.wasm.HEAPF32, ...sizes, ...offsets, act);
  } catch (e) {
    backend.disposeData(out.dataId);
    throw e;
  }
  return out;
}

function isFloat(...ts: (tf.TensorInfo | undefined)[]): boolean {
  return ts.every((t) => t == null || t.dtype === 'float32');
}

function batchMatMul(args: KernelArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const g = planMatMul(a.shape, b.shape, transposeA, transposeB);
  if (!g || !isFloat(a, b)) return stock!.get('BatchMatMul')!.kernelFunc(args) as tf.TensorInfo;
  const attrs = { ta: transposeA, tb: transposeB, act: ACT_LINEAR };
  return runGemm(args.backend as WasmBackend, { a, b }, attrs, g, null);
}

/**
 * Correct for any transpose and batch, unlike the stock kernel, whose bias
 * only reaches the first row then (shared facts/speed.md).
 */
function fusedMatMul(args: KernelArgs): tf.TensorInfo {
  const inputs = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const [a, b] = [inputs.a!, inputs.b!];
  const { bias, preluActivationWeights: prelu } = inputs;
  const attrs = args.attrs as {
    transposeA: boolean;
    transposeB: boolean;
    activation: string;
    leakyreluAlpha?: number;
  };
  const g = planMatMul(a.shape, b.shape, attrs.transposeA, attrs.transposeB);
  const biasPlan = g && bias ? planBias(bias.shape, g) : null;
  const act = attrs.activation;
  const known = act === 'linear' || act === 'relu' || ACTIVATION_KERNELS.has(act);
  if (!g || !known || (bias && !biasPlan) || !isFloat(a, b, bias, prelu)) {
    return stock!.get('_FusedMatMul')!.kernelFunc(args) as tf.TensorInfo;
  }
  const backend = args.backend as WasmBackend;
  const [ta, tb] = [attrs.transposeA, attrs.transposeB];
  const gemmAttrs = { ta, tb, act: act === 'relu' ? ACT_RELU : ACT_LINEAR };
  const out = runGemm(backend, { a, b, bias }, gemmAttrs, g, biasPlan);
  if (act === 'linear' || act === 'relu') return out;
  return applyActivation(backend, out, act, prelu, attrs.leakyreluAlpha ?? 0.2);
}

/** Runs the stock wasm activation kernel on `x` and frees `x`. */
function applyActivation(
  backend: WasmBackend,
  x: tf.TensorInfo,
  act: string,
  alpha: tf.TensorInfo | undefined,
  leakyAlpha: number,
): tf.TensorInfo {
  try {
    const kernel = tf.getKernel(ACTIVATION_KERNELS.get(act)!, 'wasm');
    const inputs = act === 'prelu' ? { x, alpha: alpha! } : { x };
    const attrs: tf.NamedAttrMap = act === 'leakyrelu' ? { alpha: leakyAlpha } : {};
    return kernel.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  } finally {
    backend.disposeData(x.dataId);
  }
}

/** A kernel of rowops.ts bound to the addon and to its stock fallback. */
function rowKernel(name: string): tf.KernelFunc {
  const kernel = ROW_KERNELS[name];
  return ((args: KernelArgs) =>
    kernel(args, {
      addon: mustAddon(),
      trailingSum: rowOps,
      fallback: () => stock!.get(name)!.kernelFunc(args) as tf.TensorInfo,
    })) as tf.KernelFunc;
}

/** A kernel of copyops.ts bound to the addon and to its stock fallback. */
function copyKernel(name: string): tf.KernelFunc {
  const kernel = COPY_KERNELS[name];
  return ((args: KernelArgs) =>
    kernel(args, {
      addon: mustAddon(),
      fallback: () => stock!.get(name)!.kernelFunc(args) as tf.TensorInfo | tf.TensorInfo[],
    })) as tf.KernelFunc;
}

const MATMUL_KERNELS = ['BatchMatMul', '_FusedMatMul'];

const KERNELS: Record<string, tf.KernelFunc> = {
  BatchMatMul: batchMatMul as tf.KernelFunc,
  _FusedMatMul: fusedMatMul as tf.KernelFunc,
  ...Object.fromEntries(Object.keys(ROW_KERNELS).map((name) => [name, rowKernel(name)])),
  ...Object.fromEntries(Object.keys(COPY_KERNELS).map((name) => [name, copyKernel(name)])),
};

/** Whether the row kernels of rowops.ts are on (set at registration). */
let rowOps = true;

/**
 * Which kernel sets to register (before/after measurements switch them off
 * one by one). Defaults come from the environment, read once per
 * registration and never written: LAB_GEMM=dnnl|openblas, LAB_NATIVE_ROWOPS=0,
 * LAB_NATIVE_COPY=0, LAB_NATIVE_FUSED=0, LAB_NATIVE_ATTN=0, LAB_NATIVE_LLIP=0,
 * LAB_NATIVE_MULTI_ADAMW=0, LAB_NATIVE_LIXP=0, LAB_NATIVE_DENSE=0, LAB_NATIVE_LOSS=0, LAB_NATIVE_EMBED=0, LAB_NATIVE_BLOCK=0. (Writing process.env at run time is
 * setenv, unsafe while native threads may read the environment.)
 */
export interface KernelOptions {
  gemm?: 'dnnl' | 'openblas'; // oneDNN when built in, else OpenBLAS
  rowOps?: boolean; // Sigmoid, Softmax, trailing-axis Sum (rowops.ts)
  copy?: boolean; // Transpose, Slice, SplitV, Concat, Identity (copyops.ts)
  fused?: boolean; // AdamW, quick GELU, layer norm (fused.ts)
  attention?: boolean; // fused multi-head self-attention and attention pooling (fused.ts; off when `fused` is)
  llip?: boolean; // Llip's fused mixing and row entropy (fused.ts; off when `fused` is)
  multiAdamW?: boolean; // all parameters' AdamW in one call (fused.ts; off: one call per parameter)
  lixp?: boolean; // LIxP's fused contextualiser (fused.ts; off when `fused` is)
  dense?: boolean; // dense layers x·w + b, one kernel each way (fused.ts; off when `fused` is)
  loss?: boolean; // SigLIP's pair loss and l2normalize, one kernel each way (fused.ts; off when `fused` is)
  embed?: boolean; // embedding lookup and its gradient (fused.ts; off when `fused` is)
  block?: boolean; // a whole transformer block, one kernel each way (fused.ts; off unless `attention` and `dense` are on)
}

function withDefaults(o: KernelOptions): Required<KernelOptions> {
  const env = process.env;
  const gemm = o.gemm ?? env.LAB_GEMM ?? 'dnnl';
  if (gemm !== 'dnnl' && gemm !== 'openblas') {
    throw new Error(`LAB_GEMM=${gemm}: expected dnnl or openblas`);
  }
  return {
    gemm,
    rowOps: o.rowOps ?? env.LAB_NATIVE_ROWOPS !== '0',
    copy: o.copy ?? env.LAB_NATIVE_COPY !== '0',
    fused: o.fused ?? env.LAB_NATIVE_FUSED !== '0',
    attention: o.attention ?? env.LAB_NATIVE_ATTN !== '0',
    llip: o.llip ?? env.LAB_NATIVE_LLIP !== '0',
    multiAdamW: o.multiAdamW ?? env.LAB_NATIVE_MULTI_ADAMW !== '0',
    lixp: o.lixp ?? env.LAB_NATIVE_LIXP !== '0',
    dense: o.dense ?? env.LAB_NATIVE_DENSE !== '0',
    loss: o.loss ?? env.LAB_NATIVE_LOSS !== '0',
    embed: o.embed ?? env.LAB_NATIVE_EMBED !== '0',
    block: o.block ?? env.LAB_NATIVE_BLOCK !== '0',
  };
}

/**
 * The kernels to replace: the matmuls and leading-axis Sum always, the row and
 * copy kernels as `o` says; a set is skipped when the addon predates it (a
 * stale build/native/addon.node).
 */
function replaced(addon: BlasAddon, o: Required<KernelOptions>): string[] {
  rowOps = o.rowOps && typeof addon.softmaxRows === 'function';
  const copyOps = o.copy && typeof addon.copyStrided === 'function';
  return [
    ...MATMUL_KERNELS,
    ...Object.keys(ROW_KERNELS).filter((name) => rowOps || name === 'Sum'),
    ...(copyOps ? Object.keys(COPY_KERNELS) : []),
  ];
}

/** Swaps one wasm kernel, keeping setup/dispose of the stock one (its C bindings). */
function replaceKernel(config: tf.KernelConfig, kernelFunc: tf.KernelFunc): void {
  tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel({ ...config, kernelFunc });
}

/** The lab's own fused kernels registered by us (lib/backend/kernels.ts), to unregister on restore. */
let added: string[] = [];

/** The fused kernels to add, unless off or the addon predates them. */
function fusedToAdd(addon: BlasAddon, o: Required<KernelOptions>): string[] {
  const on = o.fused && typeof addon.layerNormGrad === 'function';
  const off = [
    ...(o.attention && typeof addon.attentionGrad === 'function' ? [] : ATTENTION_KERNELS),
    ...(o.attention && typeof addon.attentionPoolGrad === 'function' ? [] : POOL_KERNELS),
    ...(o.embed && typeof addon.embedGrad === 'function' ? [] : EMBED_KERNELS),
    ...(o.llip && typeof addon.llipMixGrad === 'function' ? [] : LLIP_KERNELS),
    ...(o.multiAdamW && typeof addon.adamwMulti === 'function' ? [] : ADAMW_MULTI_KERNELS),
    ...(o.lixp && typeof addon.lixpContextGrad === 'function' ? [] : LIXP_KERNELS),
    ...(o.dense && typeof addon.denseGrad === 'function' ? [] : DENSE_KERNELS),
    // the block runs the native attention, dense layers, layer norms and GELU: only beside them
    ...(o.block && o.attention && o.dense && typeof addon.blockGrad === 'function'
      ? []
      : BLOCK_KERNELS),
    ...(o.loss && typeof addon.l2NormalizeGrad === 'function' ? [] : LOSS_KERNELS),
  ];
  return on ? Object.keys(FUSED_KERNELS).filter((name) => !off.includes(name)) : [];
}

/** Points the native matmuls at oneDNN (when built in and asked for) or OpenBLAS. */
function selectGemm(addon: BlasAddon, want: 'dnnl' | 'openblas'): void {
  if (typeof addon.setGemm !== 'function') return; // a stale addon: OpenBLAS only
  if (want === 'openblas' || !addon.setGemm('dnnl')) addon.setGemm('openblas');
}

/**
 * Registers the native kernels on backend 'wasm' (idempotent; call
 * restoreStockKernels first to change `options`), picks the matmul library
 * and sets its thread count. Throws with the
 * reason when the addon is unusable.
 * @returns the addon's version string.
 */
export function registerNativeKernels(threads: number, options: KernelOptions = {}): string {
  const addon = mustAddon();
  const o = withDefaults(options);
  addon.setThreads(threads);
  selectGemm(addon, o.gemm);
  if (stock) return addon.version();
  const saved = new Map<string, tf.KernelConfig>();
  const names = replaced(addon, o);
  for (const name of names) {
    const config = tf.getKernel(name, 'wasm');
    if (!config) throw new Error(`[lab] native matmul: no stock wasm kernel ${name}`);
    saved.set(name, config);
  }
  stock = saved;
  for (const name of names) replaceKernel(saved.get(name)!, KERNELS[name]);
  added = fusedToAdd(addon, o);
  for (const name of added) {
    const kernel = FUSED_KERNELS[name];
    const kernelFunc = ((args: KernelArgs) => kernel(args, mustAddon())) as tf.KernelFunc;
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc });
  }
  return addon.version();
}

/** Puts the stock wasm kernels back and removes the fused ones (tests compare both in one process). */
export function restoreStockKernels(): void {
  if (!stock) return;
  for (const config of stock.values()) {
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
  for (const name of added) tf.unregisterKernel(name, 'wasm');
  added = [];
  stock = null;
}

/**
 * The linear probe's fits in one native call (probeops.h: lib/eval/probe.ts
 * `fitMany`'s steps with the same bits), or null, when the op path would not
 * give those bits or the addon predates it: only while the native BatchMatMul
 * and Softmax kernels are registered and wasm is the active backend; off with
 * LAB_NATIVE_PROBE=0.
 */
export function nativeProbeFit(): ((heap: Float32Array, ...args: number[]) => void) | null {
  if (!stock?.has('BatchMatMul') || !stock.has('Softmax') || tf.getBackend() !== 'wasm')
    return null;
  if (process.env.LAB_NATIVE_PROBE === '0') return null;
  const loaded = loadAddon();
  if ('error' in loaded || typeof loaded.addon.probeFit !== 'function') return null;
  return loaded.addon.probeFit.bind(loaded.addon);
}

/** Sets the threads of the native matmuls and kernels (the benchmark times several counts in one process). */
export function setNativeThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`threads must be a positive integer, got ${threads}`);
  mustAddon().setThreads(threads);
}

/** Whether the native kernels are registered right now. */
export function nativeKernelsActive(): boolean {
  return stock !== null;
}
