/**
 * Client of bench/torch_bench.py: one long-lived Python process per setup (thread
 * count × BLAS environment, `TorchSetup`; Debian's /usr/bin/python3 with
 * python3-torch; LAB_PYTHON overrides the interpreter) spoken to in JSON lines,
 * so lab and PyTorch steps can alternate.
 *
 * Every way the child can fail (cannot start, exits, closes its stdin) becomes one
 * rejected call with a one-line ChildError naming what is missing; nothing is left
 * to surface as an unhandled 'error' event (an uncaught EPIPE is rethrown by the
 * wasm backend's Emscripten handler, and Node then prints its 36 kB source line).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { withoutLabOpenMpEnv } from '../lib/backend/threads';

export const PYTHON = process.env.LAB_PYTHON || '/usr/bin/python3';

const INSTALL = 'bash scripts/install-system.sh';

/** An expected failure of a child process: its message is the whole report. */
export class ChildError extends Error {}

/** `text` cut to `width` characters, marking the cut. */
export function clip(text: string, width = 300): string {
  return text.length > width
    ? `${text.slice(0, width)}… (${text.length - width} more chars)`
    : text;
}

/** The last non-empty line of a child's stderr (Python's exception line), clipped. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim());
  return clip(lines.filter((l) => l !== '').at(-1) ?? '');
}

/**
 * An error for the terminal: the message alone for expected failures; for others the
 * message and the first stack frames, every line clipped, so a minified bundle's
 * source line never reaches the terminal.
 */
export function formatError(e: unknown, frames = 6): string {
  if (e instanceof ChildError) return clip(e.message, 500);
  if (!(e instanceof Error)) return clip(String(e), 500);
  const at = (e.stack ?? '')
    .split('\n')
    .filter((l) => /^\s+at /.test(l))
    .slice(0, frames);
  return [`${e.name}: ${e.message}`.split('\n')[0], ...at].map((l) => clip(l, 300)).join('\n');
}

/** Debian package of each Python module the bench imports. */
const PACKAGES: Record<string, string> = { torch: 'python3-torch', numpy: 'python3-numpy' };

/** Imports each module, one "name<TAB>error" line per failure on stdout. */
const IMPORT_EACH = `
import sys
bad = 0
for name in sys.argv[1:]:
    try:
        __import__(name)
    except Exception as e:
        bad = 1
        print(name + "\t" + (type(e).__name__ + ": " + str(e)).splitlines()[0])
sys.exit(bad)
`;

/**
 * Null when \`python\` can import torch and numpy, else one line naming the Debian
 * packages to install. Run before anything else so a missing PyTorch costs a second.
 */
export function checkTorch(python = PYTHON): string | null {
  const modules = Object.keys(PACKAGES);
  const r = spawnSync(python, ['-c', IMPORT_EACH, ...modules], {
    encoding: 'utf8',
    timeout: 120e3,
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code ?? r.error.message;
    return `cannot start ${python} (${code}): the PyTorch side needs Debian's python3 and python3-torch; install them: ${INSTALL}`;
  }
  if (r.status === 0) return null;
  const failed = r.stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter(([name, err]) => name in PACKAGES && err);
  if (failed.length === 0) {
    const why = lastLine(r.stderr) || (r.signal ? `killed by ${r.signal}` : `exit ${r.status}`);
    return `cannot check for PyTorch: ${python} -c "import torch" failed (${why}); install the Debian package python3-torch: ${INSTALL}`;
  }
  const pkgs = failed.map(([name]) => PACKAGES[name]).join(' ');
  const why = clip(failed.map(([, err]) => err).join('; '), 200);
  return `PyTorch is missing: ${python} cannot import ${failed.map(([n]) => n).join(', ')} (${why}); install the Debian package${failed.length > 1 ? 's' : ''} ${pkgs}: ${INSTALL}`;
}

export interface StepTimes {
  ms: number[]; // wall clock
  cpuMs: number[]; // CPU time of the process (all its threads)
  loss: number[];
}

/** The BLAS variables this machine pins (shared/facts/speed.md) and the yardstick runs without. */
export const BLAS_PINS = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/** How a PyTorch child runs: its thread count, and the BLAS environment as pinned or with the pins unset. */
export interface TorchSetup {
  threads: number;
  blas: 'pinned' | 'unset';
}

/** The pins set in this process's environment, as NAME=value. */
export function blasPins(): string[] {
  return BLAS_PINS.filter((n) => process.env[n] !== undefined).map((n) => `${n}=${process.env[n]}`);
}

/**
 * The setups the yardstick runs: 1 and 2 threads, each with the BLAS pins as set
 * and with them unset (only when some are set: otherwise both would be the same).
 */
export function torchSetups(threads = [1, 2]): TorchSetup[] {
  const blas: TorchSetup['blas'][] = blasPins().length ? ['pinned', 'unset'] : ['pinned'];
  return blas.flatMap((b) => threads.map((t) => ({ threads: t, blas: b })));
}

/** "PyTorch 1 thread, BLAS pins unset": a side's name in the tables. */
export function setupName(s: TorchSetup): string {
  const t = `PyTorch ${s.threads} thread${s.threads === 1 ? '' : 's'}`;
  return blasPins().length ? `${t}, BLAS ${s.blas === 'pinned' ? 'as pinned' : 'pins unset'}` : t;
}

/**
 * The child's environment: this process's, with the thread count pinned for every
 * pool (torch's OpenMP, OpenBLAS's own, MKL's) and, for 'unset', without the BLAS
 * pins; without the GOMP_SPINCOUNT the lab sets for itself (lib/backend/threads.ts).
 * Only the child's: this process keeps its pins.
 */
export function childEnv(s: TorchSetup, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = withoutLabOpenMpEnv(env); // PyTorch's OpenMP spins as it would by default
  if (s.blas === 'unset') for (const n of BLAS_PINS) delete out[n];
  for (const n of ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'])
    out[n] = String(s.threads);
  return out;
}

export class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterator<string>;
  private stderr = '';
  private torchVersion = 'unknown';
  /** Set once the child cannot answer any more: the reason, as one line. */
  private dead: string | null = null;
  private died: Promise<never>;

  constructor(
    private python = PYTHON,
    readonly setup: TorchSetup = { threads: 1, blas: 'pinned' },
  ) {
    const script = path.join(__dirname, 'torch_bench.py');
    this.proc = spawn(python, [script, '--threads', String(setup.threads)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: childEnv(setup),
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.died = new Promise<never>((_, reject) => {
      const fail = (why: string) => {
        this.dead ??= why;
        reject(new ChildError(this.dead));
      };
      this.proc.on('error', (e: NodeJS.ErrnoException) =>
        fail(
          `cannot start the PyTorch bench server: ${python} (${e.code ?? e.message}); install Debian's python3-torch: ${INSTALL}`,
        ),
      );
      this.proc.on('exit', (code, signal) => fail(this.exitReason(code, signal)));
    });
    this.died.catch(() => {}); // a death between calls is reported by the next call
    // Writes to a child that has exited fail with EPIPE: the 'exit' above reports why.
    this.proc.stdin.on('error', () => {});
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  private exitReason(code: number | null, signal: NodeJS.Signals | null): string {
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const err = lastLine(this.stderr);
    const missing = /No module named '([\w.]+)'/.exec(err)?.[1]?.split('.')[0];
    if (missing && PACKAGES[missing]) {
      return `PyTorch bench server (${this.python}) ${how}: ${err}; install the Debian package ${PACKAGES[missing]}: ${INSTALL}`;
    }
    return `PyTorch bench server (${this.python} bench/torch_bench.py) ${how}${err ? `: ${err}` : ''}`;
  }

  private async call<T>(msg: object): Promise<T> {
    if (this.dead) throw new ChildError(this.dead);
    this.proc.stdin.write(`${JSON.stringify(msg)}\n`);
    const next = await Promise.race([this.lines.next(), this.died]);
    if (next.done) {
      // stdout closed: 'exit' follows within moments and says why.
      await Promise.race([this.died, new Promise((r) => setTimeout(r, 2000))]);
      throw new ChildError(this.dead ?? this.exitReason(null, null));
    }
    let reply: T & { error?: string };
    try {
      reply = JSON.parse(next.value);
    } catch {
      throw new ChildError(`PyTorch bench server: not a JSON reply: ${clip(next.value, 200)}`);
    }
    if (reply.error) throw new ChildError(`torch_bench.py: ${clip(reply.error)}`);
    return reply;
  }

  /** Frees the previous model and loads this one (weights, batches, objective, optimizer). */
  async load(key: string, dir: string): Promise<void> {
    const reply = await this.call<{ torch: string }>({ cmd: 'load', key, dir });
    this.torchVersion = reply.torch;
  }

  /** torch.__version__, known after the first load. */
  version(): string {
    return this.torchVersion;
  }

  /** Trains steps [from, to) of the loaded model; wall ms, CPU ms and loss per step. */
  steps(key: string, from: number, to: number): Promise<StepTimes> {
    return this.call({ cmd: 'steps', key, from, to });
  }

  /** Median ms of forward + backward of each objective (bench/losses.ts has the lab side). */
  losses(shape: object, reps: number): Promise<Record<string, number>> {
    return this.call({ cmd: 'losses', ...shape, reps });
  }

  /** Peak resident memory since the last load (MiB). */
  async maxRssMiB(): Promise<number> {
    return (await this.call<{ maxRssMiB: number }>({ cmd: 'memory' })).maxRssMiB;
  }

  close(): void {
    if (!this.dead && this.proc.stdin.writable) {
      this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    }
  }
}
