/**
 * A Llip training step on the `lab` preset as the number of mixture tokens K
 * grows, beside the SigLIP step of the same towers: what the K tokens cost in
 * the ViT plus the pairwise mixing of the objective (B² mixtures; notebook 03
 * §8 times the objective alone). Lab side only (the main table has Llip at
 * K = 32 against PyTorch); the models take turns step by step, so load from
 * other processes hits every K alike.
 */
import type { World } from '../lib/data/world';
import { disposeParams } from '../lib/model/params';
import { objectiveDefaults } from '../lib/objectives/index';
import { createModel } from '../lib/objectives/model';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { median } from './compare';
import { labStep } from './profile';
import { type BenchCase, benchOptim, fixedBatches } from './setup';

export interface LlipStepTime {
  K: number; // 0: the SigLIP step of the same towers
  ms: number; // median wall ms per training step
  cpuMs?: number; // median CPU ms per training step
}

/** Median ms per training step of SigLIP and of Llip at each K: one warm-up step each, then `reps` rounds. */
export function timeLlipSteps(c: BenchCase, world: World, Ks: number[], reps: number) {
  const [batch] = fixedBatches(world, c.batch, 1);
  const runs = [0, ...Ks].map((K) => {
    const objective = K === 0 ? 'siglip' : { ...objectiveDefaults('llip'), mixtureTokens: K };
    const model = createModel(c.model, objective, world.tokenizer.END, 0);
    return {
      K,
      model,
      adam: createAdamState(model.params),
      ms: [] as number[],
      cpu: [] as number[],
    };
  });
  for (let r = -1; r < reps; r++) {
    for (let j = 0; j < runs.length; j++) {
      const run = runs[(j + Math.max(r, 0)) % runs.length]; // rotate who goes first
      const [t0, c0] = [performance.now(), process.cpuUsage()];
      labStep(run.model, batch, run.adam, r + 1, 100, benchOptim());
      const cu = process.cpuUsage(c0);
      if (r >= 0) run.ms.push(performance.now() - t0);
      if (r >= 0) run.cpu.push((cu.user + cu.system) / 1000);
    }
  }
  return runs.map((run): LlipStepTime => {
    disposeAdamState(run.adam);
    disposeParams(run.model.params);
    return { K: run.K, ms: median(run.ms), cpuMs: median(run.cpu) };
  });
}
