/**
 * The training loop: repeat the step (step.ts) for `steps` steps, evaluate every
 * `evalEvery` steps and at the end, append each record to a JSONL file, and
 * check that the tensor count stays flat. With `startStep`, `adam` and `history`
 * from a checkpoint (and the data Rng restored by the caller) a run continues
 * exactly as if it had never stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Model } from '../objectives/model';
import { Progress } from '../progress';
import { type AdamState, createAdamState, disposeAdamState } from './optim';
import { type StepOptions, type StepRecord, trainStep } from './step';

export interface TrainOptions extends StepOptions {
  /** called every `evalEvery` steps and at the end; its numbers join the step record */
  evaluate?: (model: Model, step: number) => Record<string, number>;
  evalEvery?: number;
  historyPath?: string; // JSONL, one StepRecord per line (truncated at start)
  label?: string;
  quiet?: boolean;
  adam?: AdamState; // resume from an optimizer state
  startStep?: number;
  /** records of the steps before startStep (a resumed run); returned ahead of the new ones */
  history?: StepRecord[];
  /** called after each finished step, e.g. to write a checkpoint; sees the full history */
  afterStep?: (rec: StepRecord, adam: AdamState, history: StepRecord[]) => void;
}

/** Train `model` in place; returns the per-step history and the optimizer state. */
export function trainLoop(
  model: Model,
  o: TrainOptions,
): { history: StepRecord[]; adam: AdamState } {
  const adam = o.adam ?? createAdamState(model.params);
  try {
    return { history: runSteps(model, o, adam), adam };
  } catch (e) {
    if (!o.adam) disposeAdamState(adam); // ours: a failed run must not leak its moments
    throw e;
  }
}

/** `loss 0.123  t 10.2  b -9.8  900 ex/s`: the loss and the objective's first two metrics. */
function progressText(rec: StepRecord): string {
  const skip = new Set(['step', 'loss', 'lr']);
  const metrics = Object.keys(rec)
    .filter((k) => !skip.has(k))
    .slice(0, 2);
  const parts = metrics.map((k) => `${k} ${rec[k].toFixed(2)}`);
  return `loss ${rec.loss.toFixed(3)}  ${parts.join('  ')}  ${rec.examplesPerSec.toFixed(0)} ex/s`;
}

function runSteps(model: Model, o: TrainOptions, adam: AdamState): StepRecord[] {
  const history: StepRecord[] = [...(o.history ?? [])];
  if (o.historyPath) {
    fs.mkdirSync(path.dirname(o.historyPath), { recursive: true });
    if (!o.startStep) fs.writeFileSync(o.historyPath, '');
  }
  const bar = o.quiet ? null : new Progress(o.steps, o.label ?? model.objective.name);
  let baseTensors = -1;
  for (let step = o.startStep ?? 0; step < o.steps; step++) {
    const rec = trainStep(model, o, step, adam);
    if (baseTensors < 0) baseTensors = rec.tensors;
    else if (rec.tensors > baseTensors)
      throw new Error(`tensor leak: ${rec.tensors - baseTensors} tensors at step ${step + 1}`);
    if (o.evaluate && ((o.evalEvery && (step + 1) % o.evalEvery === 0) || step + 1 === o.steps))
      Object.assign(rec, o.evaluate(model, step + 1));
    history.push(rec);
    if (o.historyPath) fs.appendFileSync(o.historyPath, `${JSON.stringify(rec)}\n`);
    o.afterStep?.(rec, adam, history);
    bar?.update(step + 1, progressText(rec));
  }
  return history;
}

export { DivergenceError, lossAndGrads, type StepRecord, trainStep } from './step';
