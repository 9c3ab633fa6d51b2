/**
 * A Llip training step on the `lab` preset as the number of mixture tokens K
 * grows (lab side only: the PyTorch side has no Llip model yet), beside the
 * SigLIP step of the same towers: what the K tokens cost in the ViT plus the
 * pairwise mixing of the objective (B² mixtures; notebook 03 §8 times the
 * objective alone).
 */
import type { World } from '../lib/data/world';
import { disposeParams } from '../lib/model/params';
import { objectiveDefaults } from '../lib/objectives/index';
import { createModel } from '../lib/objectives/model';
import { createAdamState, disposeAdamState } from '../lib/train/optim';
import { labStep } from './profile';
import { type BenchCase, benchOptim, fixedBatches } from './setup';

export interface LlipStepTime {
  K: number; // 0: the SigLIP step of the same towers
  ms: number; // median wall ms per training step
}

/** Median ms per training step of SigLIP and of Llip at each K, after one warm-up step. */
export function timeLlipSteps(c: BenchCase, world: World, Ks: number[], reps: number) {
  const [batch] = fixedBatches(world, c.batch, 1);
  return [0, ...Ks].map((K): LlipStepTime => {
    const objective = K === 0 ? 'siglip' : { ...objectiveDefaults('llip'), mixtureTokens: K };
    const model = createModel(c.model, objective, world.tokenizer.END, 0);
    const adam = createAdamState(model.params);
    const ms: number[] = [];
    for (let r = -1; r < reps; r++) {
      const t0 = performance.now();
      labStep(model, batch, adam, r + 1, 100, benchOptim());
      if (r >= 0) ms.push(performance.now() - t0);
    }
    disposeAdamState(adam);
    disposeParams(model.params);
    ms.sort((a, b) => a - b);
    return { K, ms: ms[ms.length >> 1] };
  });
}
