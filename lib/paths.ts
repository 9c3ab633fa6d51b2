/**
 * Where and how the lab writes files. Notebooks run with the notebook folder as cwd, scripts with
 * the repo root: resolving against the repo root makes `out/...` mean one place.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The nearest folder above this file (through the notebooks/lib symlink) holding package.json. */
export function repoRoot(): string {
  for (const start of [__dirname, process.cwd()]) {
    let dir = fs.existsSync(start) ? fs.realpathSync(start) : start;
    while (dir !== path.dirname(dir)) {
      if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
      dir = path.dirname(dir);
    }
  }
  return process.cwd();
}

/** `p` if absolute, else `p` under the repo root. */
export function labPath(p: string): string {
  return path.isAbsolute(p) ? p : path.join(repoRoot(), p);
}

/**
 * Write `bytes` to `file` so readers never see a half-written file: a temp file
 * in the same folder, optionally fsync'd, then renamed over the target.
 */
export function writeAtomic(
  file: string,
  bytes: Buffer | string,
  opts: { fsync?: boolean } = {},
): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
      if (opts.fsync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** The commit of the code that ran, as git tells it ('unknown' outside a clone). */
export function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot(), stdio: 'pipe' });
    return String(head).trim().slice(0, 12);
  } catch {
    return 'unknown';
  }
}

/** The records of a JSON-lines file (blank lines skipped); [] when it does not exist. */
export function readJsonl<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}
