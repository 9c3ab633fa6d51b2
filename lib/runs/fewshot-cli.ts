/**
 * `npm run fewshot -- <run dir> [<run dir> …] [--episodes n] [--shots 1,2,…]
 * [--support n] [--k 16] [--names SigLIP,CLIP] [--png prefix]`: the whole
 * few-shot suite on finished runs (their newest checkpoints), each task's
 * support pool drawn at n images per class (default 2·max(shots): a pool of
 * exactly max(shots) would make every episode at that k the same set). Prints each run's suite average (method × k,
 * mean ± 95% CI over episodes), writes <run>/fewshot.json and a figure per run,
 * and with several runs the LIxP paper's Table 1 shape at k shots (first run = baseline).
 * `--reuse` reads a run's fewshot.json instead when its shots, episodes and pool match.
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../backend/index';
import {
  fewShotFigure,
  type ModelRows,
  shotsTableRows,
  table1Figure,
  table1Rows,
} from '../plot/fewshot';
import { closeExporter, figurePath, savePng } from '../plot/plot';
import { showTable } from '../plot/table';
import { fewShotRun, readFewShotReport } from './fewshot-run';

const OPTIONS = {
  episodes: { type: 'string' },
  shots: { type: 'string' },
  k: { type: 'string' },
  support: { type: 'string' },
  reuse: { type: 'boolean' },
  names: { type: 'string' },
  png: { type: 'string' },
} as const;

export async function fewShotCli(argv: string[]): Promise<number> {
  const { values: v, positionals: dirs } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
  });
  if (!dirs.length) {
    console.error(
      'usage: npm run fewshot -- <run dir> [<run dir> …] [--episodes n] [--shots 1,2,4] [--k 16] [--names A,B] [--png prefix]',
    );
    return 2;
  }
  const shots = (v.shots ?? '1,2,4,8,16,32,64').split(',').map(Number);
  const episodes = Number(v.episodes ?? 10);
  const names = v.names?.split(',') ?? [];
  const info = await initBackend();
  console.log(`[fewshot] backend: ${info.description}`);
  const support = Number(v.support ?? 2 * Math.max(...shots));
  const models: (ModelRows & { file: string })[] = [];
  for (const [i, dir] of dirs.entries()) {
    const over = { eval: { supportPerClass: support, shots, episodes } };
    const old = v.reuse ? readFewShotReport(dir) : null;
    const same =
      old &&
      JSON.stringify([old.settings.shots, old.settings.episodes, old.support]) ===
        JSON.stringify([shots, episodes, support]);
    const r = same ? old : fewShotRun(dir, over);
    const name = names[i] ?? r.objective;
    models.push({ name, method: r.objective, rows: r.suite, file: `${v.png}-${i}` });
    const how = same ? 'reused' : `${r.seconds.toFixed(1)} s`;
    showTable(shotsTableRows(r.suite), {
      title: `${name} (${dir}, step ${r.step}): suite average, accuracy % (mean ± 95% CI over ${episodes} episodes, ${support} support images per class); ${how}`,
    });
  }
  const k = Number(v.k ?? 16);
  if (models.length > 1)
    showTable(table1Rows(models, { k }), {
      title: `Table 1 shape at k = ${k} (accuracy %, gain over ${models[0].name})`,
    });
  // figures last: a browser left idle through minutes of blocking compute may be gone
  if (v.png) {
    for (const m of models) {
      const title = `${m.name}: few-shot accuracy averaged over the task suite`;
      await savePng(fewShotFigure(m.rows, { title }), figurePath(m.file));
    }
    if (models.length > 1) {
      const title = `Suite average at ${k} shots per class`;
      await savePng(table1Figure(models, { k, title }), figurePath(`${v.png}-table1`));
    }
  }
  await closeExporter();
  return 0;
}
