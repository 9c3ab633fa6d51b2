/**
 * The objective registry: a plain map from the config's `objective.name` to the
 * objective. Adding an objective is one file beside these and one line here;
 * the config schema, the training step and evaluation pick it up from the map.
 */
import * as v from 'valibot';
import { clip } from './clip';
import { lixp } from './lixp';
import { llip } from './llip';
import type { Objective } from './objective';
import { siglip } from './siglip';

export const OBJECTIVES = { siglip, clip, lixp, llip };

export type ObjectiveName = keyof typeof OBJECTIVES;

/** The config section of any registered objective (a union discriminated by `name`). */
export type ObjectiveConfig = {
  [K in ObjectiveName]: (typeof OBJECTIVES)[K]['defaults'];
}[ObjectiveName];

export const OBJECTIVE_NAMES = Object.keys(OBJECTIVES) as ObjectiveName[];

/** An objective's schema as valibot's `variant` sees it (the Objective interface keeps it generic). */
type Option = v.StrictObjectSchema<{ name: v.LiteralSchema<string, undefined> }, undefined>;

/** The `objective` section of the config: one strict schema per objective, chosen by `name`. */
export const ObjectiveSchema = v.variant(
  'name',
  OBJECTIVE_NAMES.map((n) => OBJECTIVES[n].schema as unknown as Option),
  (i) => `must name one of ${OBJECTIVE_NAMES.join(', ')}, got ${JSON.stringify(i.input)}`,
) as unknown as v.GenericSchema<unknown, ObjectiveConfig>;

/** The objective a config section names; unknown names throw, listing the valid ones. */
export function objectiveOf(cfg: { name: string }): Objective<ObjectiveConfig> {
  const o = (OBJECTIVES as Record<string, unknown>)[cfg.name];
  if (!o) throw new Error(`unknown objective '${cfg.name}' (valid: ${OBJECTIVE_NAMES.join(', ')})`);
  return o as Objective<ObjectiveConfig>;
}

/** An objective's default section by name (what `objective.name=lixp` alone gives). */
export function objectiveDefaults(name: string): ObjectiveConfig {
  return structuredClone(objectiveOf({ name }).defaults);
}

export type { Objective, ObjectiveLoss } from './objective';
