/**
 * Seeded pseudo-random numbers. Every random choice in the lab (data, weight init,
 * batch order, few-shot draws) goes through an `Rng` so a run is reproducible from
 * its seed. sfc32 (small fast counter) seeded by splitmix32; `state()`/`setState()`
 * let checkpoints capture and restore the stream exactly.
 */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 to spread a small integer seed over 128 bits of state
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** Uniform 32-bit unsigned integer (sfc32). */
  nextU32(): number {
    const s = this.s;
    const t = (((s[0] + s[1]) >>> 0) + s[3]) >>> 0;
    s[3] = (s[3] + 1) >>> 0;
    s[0] = s[1] ^ (s[1] >>> 9);
    s[1] = (s[2] + (s[2] << 3)) >>> 0;
    s[2] = ((s[2] << 21) | (s[2] >>> 11)) >>> 0;
    s[2] = (s[2] + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new Error(`Rng.int: n must be >= 1, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** One element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('Rng.pick: empty array');
    return xs[this.int(xs.length)];
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = xs[i];
      xs[i] = xs[j];
      xs[j] = tmp;
    }
    return xs;
  }

  /** Derive an independent child stream (e.g. one per data split or per worker). */
  fork(salt: number): Rng {
    return new Rng((this.nextU32() ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  }

  /** Snapshot of the generator, for checkpoints. */
  state(): number[] {
    return [...this.s, this.spare === null ? Number.NaN : this.spare];
  }

  setState(st: number[]): void {
    if (st.length !== 5) throw new Error(`Rng.setState: expected 5 numbers, got ${st.length}`);
    this.s = Uint32Array.from(st.slice(0, 4));
    this.spare = Number.isNaN(st[4]) ? null : st[4];
  }
}
