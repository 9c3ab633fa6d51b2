/**
 * Where the lab writes. Notebooks run with the notebook folder as cwd, scripts with
 * the repo root: resolving against the repo root makes `out/...` mean one place.
 */
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
