/**
 * The page's TF.js backend: WebGL when the browser gives a WebGL context, else
 * wasm (SIMD when the browser has it), else the plain JS cpu backend. The wasm
 * binaries come from this site (imported with `?url`, emitted by the build),
 * never from a CDN. `?backend=wasm` (or webgl, cpu) in the URL forces one.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

export const BACKENDS = ['webgl', 'wasm', 'cpu'] as const;

/** Sets the first backend of `order` that initialises; returns its name. */
export async function pickBackend(forced: string | null): Promise<string> {
  setWasmPaths({
    'tfjs-backend-wasm.wasm': wasmPlain,
    'tfjs-backend-wasm-simd.wasm': wasmSimd,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
  });
  const order = forced && (BACKENDS as readonly string[]).includes(forced) ? [forced] : BACKENDS;
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // this backend cannot start here (no WebGL context, no wasm): try the next one
    }
  }
  throw new Error(`no TF.js backend started (tried ${order.join(', ')})`);
}
