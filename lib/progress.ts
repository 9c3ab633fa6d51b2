/**
 * A progress bar for long loops. In a terminal it redraws one line; elsewhere
 * (a notebook kernel, CI logs) it prints a line every `every` fraction of the work.
 */
export class Progress {
  private readonly start = Date.now();
  private lastPrinted = -1;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly label = '',
    private readonly every = 0.1,
  ) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update(done: number, info = ''): void {
    const frac = Math.min(1, done / this.total);
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : 0;
    const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
    const line = `${this.label} [${bar}] ${done}/${this.total} ${fmtTime(elapsed)} eta ${fmtTime(eta)} ${info}`;
    if (this.tty) {
      process.stderr.write(`\r${line.slice(0, (process.stderr.columns || 120) - 1)}`);
      if (done >= this.total) process.stderr.write('\n');
      return;
    }
    const bucket = Math.floor(frac / this.every);
    if (bucket > this.lastPrinted || done >= this.total) {
      this.lastPrinted = bucket;
      console.log(line);
    }
  }
}

export function fmtTime(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}
