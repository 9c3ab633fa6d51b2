/**
 * Client of bench/torch_bench.py: one long-lived /usr/bin/python3 process (Debian
 * python3-torch) spoken to in JSON lines, so lab and PyTorch steps can alternate.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const PYTHON = '/usr/bin/python3';

export interface StepTimes {
  ms: number[]; // wall clock
  cpuMs: number[]; // CPU time of the process (all its threads)
  loss: number[];
}

export class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterator<string>;
  private stderr = '';
  private torchVersion = 'unknown';

  constructor() {
    const script = path.join(__dirname, 'torch_bench.py');
    // One OpenMP/MKL pool sized by set_num_threads; leave OPENBLAS_CORETYPE as the env has it.
    this.proc = spawn(PYTHON, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  private async call<T>(msg: object): Promise<T> {
    this.proc.stdin.write(`${JSON.stringify(msg)}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error(`torch_bench.py exited: ${this.stderr.trim()}`);
    const reply = JSON.parse(next.value) as T & { error?: string };
    if (reply.error) throw new Error(`torch_bench.py: ${reply.error}`);
    return reply;
  }

  /** Loads one model copy (weights, batches, optimizer) per thread count. */
  async load(key: string, dir: string, threads: number[]): Promise<void> {
    const reply = await this.call<{ torch: string }>({ cmd: 'load', key, dir, threads });
    this.torchVersion = reply.torch;
  }

  /** torch.__version__, known after the first load. */
  version(): string {
    return this.torchVersion;
  }

  /** Trains steps [from, to) of the copy for `threads`; ms and loss per step. */
  steps(key: string, threads: number, from: number, to: number): Promise<StepTimes> {
    return this.call({ cmd: 'steps', key, threads, from, to });
  }

  /** Median ms of forward + backward of each objective (bench/losses.ts has the lab side). */
  losses(shape: object, reps: number, threads: number): Promise<Record<string, number>> {
    return this.call({ cmd: 'losses', ...shape, reps, threads });
  }

  async maxRssMiB(): Promise<number> {
    return (await this.call<{ maxRssMiB: number }>({ cmd: 'memory' })).maxRssMiB;
  }

  close(): void {
    this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
  }
}
