/** Shared test helpers: backend set-up, golden fixtures, closeness checks. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/backend/index';
import {
  type KernelOptions,
  registerNativeKernels,
  restoreStockKernels,
} from '../lib/backend/native';

export async function setup(): Promise<void> {
  await initBackend();
}

let golden: any = null;
/** The fixtures written by test/reference/make_golden.py (PyTorch, float64). */
export function loadGolden(): any {
  golden ??= JSON.parse(fs.readFileSync(path.join(__dirname, 'reference', 'golden.json'), 'utf8'));
  return golden;
}

function flat(x: unknown): number[] {
  if (ArrayBuffer.isView(x)) return Array.from(x as Float32Array);
  return Array.isArray(x) ? (x as unknown[]).flatMap(flat) : [x as number];
}

/** |a − e| ≤ atol + rtol·|e| elementwise, with a message naming the first bad index. */
export function assertClose(
  actual: ArrayLike<number> | number,
  expected: unknown,
  what: string,
  atol = 1e-5,
  rtol = 1e-4,
): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const e = flat(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    const tol = atol + rtol * Math.abs(e[i]);
    if (!(Math.abs(a[i] - e[i]) <= tol))
      assert.fail(`${what}[${i}]: got ${a[i]}, expected ${e[i]} (tol ${tol.toExponential(1)})`);
  }
}

/**
 * Central finite-difference gradient of a scalar function f at x (float32 values,
 * so the step is large-ish; the checks use matching tolerances).
 */
export function numericGrad(
  f: (x: tf.Tensor) => tf.Scalar,
  x: tf.Tensor,
  eps = 1e-2,
): Float32Array {
  const base = x.dataSync().slice();
  const g = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const at = (d: number) =>
      tf.tidy(() => {
        const v = base.slice();
        v[i] += d;
        return f(tf.tensor(v, x.shape)).dataSync()[0];
      });
    g[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return g;
}

export function tensorOf(x: unknown, shape?: number[]): tf.Tensor {
  return tf.tensor(flat(x), shape ?? shapeOf(x));
}

function shapeOf(x: unknown): number[] {
  const s: number[] = [];
  let cur = x;
  while (Array.isArray(cur)) {
    s.push(cur.length);
    cur = cur[0];
  }
  return s;
}

/** Throws at the first index where a and e differ in any bit. */
export function assertSameBits(a: Float32Array, e: Float32Array, what: string): void {
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs ${e.length}`);
  const [ua, ue] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(e.buffer)];
  for (let i = 0; i < a.length; i++)
    if (ua[i] !== ue[i]) assert.fail(`${what}[${i}]: got ${a[i]}, expected ${e[i]}`);
}

/**
 * Runs `f` with the native kernels registered at `threads` with `options` (a
 * kernel set switched off: the op path it replaces), then puts the default set back.
 */
export function withKernels<T>(threads: number, options: KernelOptions, f: () => T): T {
  restoreStockKernels();
  registerNativeKernels(threads, options);
  try {
    return f();
  } finally {
    restoreStockKernels();
    registerNativeKernels(1);
  }
}
