/**
 * Config validation: the presets pass; each hand-picked mistake is a ConfigError
 * naming its field; and a seeded fuzzer mutates valid configs (wrong types,
 * deleted keys, misspelled keys, edge numbers): every mutation is either valid
 * or a ConfigError that names the mutated field — never a bare TypeError.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeConfig, notebookConfig, PRESETS } from '../lib/config/presets';
import { ConfigError, nearestKey, validateConfig } from '../lib/config/schema';
import { Rng } from '../lib/rng';

/** `cfg` is a config, or a thunk that builds one (makeConfig validates as it builds). */
function rejects(cfg: unknown, field: string, pattern?: RegExp): void {
  assert.throws(
    () => (typeof cfg === 'function' ? cfg() : validateConfig(cfg)),
    (e: Error) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e.stack}`);
      assert.equal(e.field, field, e.message);
      if (pattern) assert.match(e.message, pattern);
      return true;
    },
  );
}

test('the presets are valid', () => {
  for (const name of Object.keys(PRESETS)) validateConfig(makeConfig(name));
});

test('hand-picked mistakes name their field', () => {
  const t = makeConfig('tiny');
  rejects({ ...t, batchSize: 1 }, 'batchSize', />= 2/);
  rejects({ ...t, steps: 0 }, 'steps');
  rejects({ ...t, objective: { name: 'sigclip' } }, 'objective.name', /siglip, clip, lixp, llip/);
  rejects(
    () => makeConfig(t, { objective: { name: 'lixp', alpha: 2 } }),
    'objective.alpha',
    /<= 1, got 2/,
  );
  rejects({ ...t, objective: { ...t.objective, tt: 1 } }, 'objective.tt', /did you mean 't'/);
  rejects({ ...t, loss: 'clip' }, 'loss', /unknown key/);
  rejects(
    () => notebookConfig('lab', { objective: { name: 'lixp', alpha: 2 } }),
    'objective.alpha',
    /<= 1, got 2/,
  );
  rejects(
    () => makeConfig(t, { objective: { name: 'llip', heads: 5 } }),
    'objective.heads',
    /must divide model.embedDim/,
  );
  rejects(
    () => makeConfig(t, { model: { image: { pool: 'maps' as 'map' } } }),
    'model.image.pool',
    /one of cls, mean, map, got 'maps'/,
  );
  rejects(() => makeConfig(t, { model: { image: { heads: 3 } } }), 'model.image.heads', /divide/);
  rejects(() => makeConfig(t, { model: { text: { heads: 5 } } }), 'model.text.heads', /divide/);
  rejects(() => makeConfig(t, { model: { image: { patch: 5 } } }), 'model.image.patch', /divide/);
  rejects(() => makeConfig(t, { optim: { lr: 0 } }), 'optim.lr', /> 0/);
  rejects(() => makeConfig(t, { optim: { minLrRatio: 1.5 } }), 'optim.minLrRatio', /<= 1/);
  rejects(() => makeConfig(t, { optim: { beta2: 1 } }), 'optim.beta2', /< 1/);
  rejects(() => makeConfig(t, { eval: { shots: [1, 32] } }), 'eval.shots', /supportPerClass/);
  rejects({ ...t, optm: {} }, 'optm', /did you mean 'optim'/);
  rejects({ ...t, world: { trainScene: 5 } }, 'world.trainScene', /did you mean 'trainScenes'/);
  rejects({ ...t, seed: Number.NaN }, 'seed', /integer, got NaN/);
  rejects(null, 'config', /must be an object/);
  assert.equal(nearestKey('batchsize', ['batchSize', 'chunkSize']), 'batchSize');
});

/** Every leaf of a config as a dotted path with its parent object and key. */
function leaves(x: unknown, at = ''): Array<{ path: string; parent: any; key: string | number }> {
  const out: Array<{ path: string; parent: any; key: string | number }> = [];
  if (typeof x !== 'object' || x === null) return out;
  for (const [k, v] of Object.entries(x)) {
    const key = Array.isArray(x) ? Number(k) : k;
    const p = Array.isArray(x) ? `${at}[${k}]` : at ? `${at}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) out.push(...leaves(v, p));
    else if (Array.isArray(v) && typeof v[0] === 'number') {
      out.push({ path: p, parent: x, key });
      out.push(...leaves(v, p));
    } else out.push({ path: p, parent: x, key });
  }
  return out;
}

const ALWAYS_BAD = [Number.NaN, null, [], {}, true, Number.POSITIVE_INFINITY, 'zz'];
const EDGY = [-1, 0, 1, 1e9, -0.5, 0.999, 3, 2.5];

test('fuzz: 600 mutated configs are valid or rejected naming the mutated field', () => {
  const rng = new Rng(20240605);
  let rejected = 0;
  for (let i = 0; i < 600; i++) {
    const cfg = makeConfig(rng.pick(Object.keys(PRESETS))) as any;
    const leaf = rng.pick(leaves(cfg));
    const old = leaf.parent[leaf.key];
    const mode = rng.int(4);
    let field = leaf.path.replace(/\[\d+\]$/, '');
    if (mode === 0) leaf.parent[leaf.key] = rng.pick(ALWAYS_BAD);
    else if (mode === 1) leaf.parent[leaf.key] = rng.pick(EDGY);
    else if (mode === 2 && !Array.isArray(leaf.parent)) delete leaf.parent[leaf.key];
    else if (!Array.isArray(leaf.parent)) {
      const k = String(leaf.key);
      const typo = `${k.slice(0, 1)}${k.slice(2)}${k.slice(1, 2)}x`;
      leaf.parent[typo] = old;
      delete leaf.parent[leaf.key];
      field = leaf.path.replace(/[^.]+$/, typo);
    } else leaf.parent[leaf.key as number] = -3;
    const what = `mutation ${i}: ${leaf.path} mode ${mode} → ${JSON.stringify(leaf.parent[leaf.key])}`;
    try {
      validateConfig(cfg);
    } catch (e) {
      assert.ok(e instanceof ConfigError, `${what}: not a ConfigError: ${(e as Error).stack}`);
      const last = field.split('.').pop() as string;
      assert.ok(e.message.includes(last), `${what}: message does not name ${field}: ${e.message}`);
      rejected++;
      continue;
    }
    // accepted: only edge numbers, deletions of optional world keys, or a string name may pass
    const okToPass =
      mode === 1 || (mode === 2 && leaf.path.startsWith('world.')) || leaf.path === 'name';
    assert.ok(okToPass, `${what}: accepted`);
  }
  assert.ok(rejected > 300, `only ${rejected} rejections`);
});
