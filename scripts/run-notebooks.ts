/**
 * `npm run notebooks [-- names...]`: execute notebooks headless through the
 * project-local tslab kernel and write executed copies + HTML to out/notebooks/.
 *
 *   npm run notebooks                     # every notebooks/*.ipynb, sorted
 *   npm run notebooks -- 01_siglip lixp   # only these (name, file or path)
 *   npm run test:notebooks                # same with LAB_QUICK=1 (short runs)
 *   ... -- --dir /tmp/scratch --out /tmp/out   # another folder (runner tests)
 *
 * Execution itself is scripts/run_notebooks.py (nbclient + nbconvert under Debian's
 * /usr/bin/python3); this wrapper finds the notebooks, refuses dirty ones and sets the
 * environment the kernel needs. LAB_QUICK and the rest of the environment pass through.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const PYTHON = '/usr/bin/python3';
const CELL_TIMEOUT_S = 1800;

type Args = { dir: string; out: string; names: string[] };

function parseArgs(argv: string[]): Args {
  const args: Args = { dir: path.join(ROOT, 'notebooks'), out: '', names: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir') args.dir = path.resolve(argv[++i]);
    else if (argv[i] === '--out') args.out = path.resolve(argv[++i]);
    else args.names.push(argv[i]);
  }
  args.out ||= path.join(ROOT, 'out', 'notebooks');
  return args;
}

/** Sorted notebooks of `dir`, or the named ones ('x', 'x.ipynb' or a path all work). */
function selectNotebooks(dir: string, names: string[]): string[] {
  const all = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ipynb'))
    .sort();
  if (names.length === 0) return all.map((f) => path.join(dir, f));
  return names.map((n) => {
    const file = path.basename(n).replace(/\.ipynb$/, '') + '.ipynb';
    if (!all.includes(file)) {
      throw new Error(`no notebook ${file} in ${dir}; have: ${all.join(', ') || '(none)'}`);
    }
    return path.join(dir, file);
  });
}

type Cell = { cell_type: string; outputs?: unknown[]; execution_count?: number | null };

/** Indices of cells that carry outputs or an execution count. */
function dirtyCells(file: string): number[] {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8')) as { cells: Cell[] };
  return nb.cells.flatMap((c, i) =>
    (c.outputs?.length ?? 0) > 0 || c.execution_count != null ? [i] : [],
  );
}

/**
 * Notebooks are committed clean (outputs live in out/, not in git diffs), so any
 * notebook in the folder with outputs fails the run before anything executes.
 */
function checkClean(dir: string): string[] {
  const problems: string[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ipynb'))) {
    const cells = dirtyCells(path.join(dir, f));
    if (cells.length > 0) {
      problems.push(
        `${path.relative(ROOT, path.join(dir, f))}: cells ${cells.join(', ')} have outputs ` +
          'or execution counts (clear them: jupyter nbconvert --clear-output --inplace <file>)',
      );
    }
  }
  return problems;
}

/** JUPYTER_PATH must be absolute, or the kernelspec's {resource_dir} breaks. */
function kernelEnv(): NodeJS.ProcessEnv {
  const jupyter = path.join(ROOT, 'jupyter');
  const prev = process.env.JUPYTER_PATH;
  return {
    ...process.env,
    JUPYTER_PATH: prev ? `${jupyter}${path.delimiter}${prev}` : jupyter,
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
  };
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const problems = checkClean(args.dir);
  if (problems.length > 0) {
    console.error(`notebooks must be committed clean:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  const notebooks = selectNotebooks(args.dir, args.names);
  if (notebooks.length === 0) {
    console.log(`no notebooks in ${args.dir}`);
    return 0;
  }
  const quick = process.env.LAB_QUICK ? ' (LAB_QUICK=' + process.env.LAB_QUICK + ')' : '';
  console.log(`running ${notebooks.length} notebook(s)${quick} -> ${args.out}`);
  const start = Date.now();
  const script = path.join(ROOT, 'scripts', 'run_notebooks.py');
  const py = [script, '--out', args.out, '--timeout', String(CELL_TIMEOUT_S), ...notebooks];
  const res = spawnSync(PYTHON, py, { stdio: 'inherit', env: kernelEnv(), cwd: ROOT });
  if (res.error) throw res.error;
  console.log(`notebooks: ${((Date.now() - start) / 1000).toFixed(1)} s in total`);
  return res.status ?? 1;
}

try {
  process.exitCode = main();
} catch (e) {
  console.error((e as Error).message);
  process.exitCode = 1;
}
