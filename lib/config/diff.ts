/**
 * Where two configs differ, for messages such as a checkpoint written by
 * another config: "at 'optim.lr': checkpoint has 0.001, this run has 0.002".
 */

const join = (at: string, k: string) => (at ? `${at}.${k}` : k);

/** The first dotted path where two JSON values differ, or null when they are equal. */
export function firstDifference(a: unknown, b: unknown, at = ''): string | null {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        join(at, k),
      );
      if (d !== null) return d;
    }
    return null;
  }
  return a === b ? null : at || '(root)';
}

/** "at 'x.y': A has 1, B has 2" for the first difference of two configs, or null. */
export function describeDifference(a: unknown, b: unknown, nameA: string, nameB: string) {
  const [ja, jb] = [JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b))];
  const d = firstDifference(ja, jb);
  if (d === null) return null;
  const at = (x: unknown) => {
    for (const k of d.split('.')) x = (x as Record<string, unknown> | undefined)?.[k];
    return JSON.stringify(x);
  };
  return `at '${d}': ${nameA} has ${at(ja)}, ${nameB} has ${at(jb)}`;
}
