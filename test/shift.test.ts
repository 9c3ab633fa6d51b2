/**
 * The representational-shift study (lib/eval/shift.ts): the contexts are what
 * they claim, one context's shift equals a plain-JS computation of
 * 1 − cos(softmax(x̄x̄ᵀ/(τ√d)) x, x) with the diagonal excluded, and on clustered
 * embeddings same-identity contexts attend to the identity more than random ones.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { representationalShift, shiftContexts } from '../lib/eval/shift';
import { Rng } from '../lib/rng';
import { setup } from './helpers';

before(setup);

test('contexts: few identities × several images each, or distinct random images', () => {
  const identity = Int32Array.from({ length: 60 }, (_, i) => i % 6);
  const o = { contextSize: 8, perIdentity: 4, contexts: 20, seed: 3 };
  const { same, random } = shiftContexts(identity, o);
  assert.equal(same.length, 20);
  for (const c of same) {
    const counts = new Map<number, number>();
    for (const i of c) counts.set(identity[i], (counts.get(identity[i]) ?? 0) + 1);
    assert.deepEqual([...counts.values()], [4, 4], `identities of ${c}`);
    assert.equal(new Set(c).size, 8);
  }
  for (const c of random) assert.equal(new Set(c).size, 8);
  assert.throws(() => shiftContexts(identity, { ...o, perIdentity: 3 }), /must divide contextSize/);
  assert.throws(
    () => shiftContexts(identity, { ...o, contextSize: 28, perIdentity: 4 }),
    /7 identities with >= 4 images needed, the images have 6/,
  );
});

const dot = (a: number[], b: number[]) => a.reduce((s, v, k) => s + v * b[k], 0);
const unitRow = (r: number[]) => r.map((v) => v / Math.hypot(...r));

/** X̂ctx rows: softmax over j ≠ i of ⟨x̄_i, x̄_j⟩ / (τ √d), times x, in plain JS. */
function contextRows(x: number[][], tau: number): number[][] {
  const d = x[0].length;
  const unit = x.map(unitRow);
  return x.map((_, i) => {
    const logits = unit.map((r, j) =>
      j === i ? -Infinity : dot(r, unit[i]) / (tau * Math.sqrt(d)),
    );
    const m = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - m));
    const z = e.reduce((a, b) => a + b, 0);
    return Array.from({ length: d }, (_, k) => e.reduce((a, w, j) => a + (w / z) * x[j][k], 0));
  });
}

/** cos(x̂ctx_i, μ_id) − cos(x_i, μ_id) averaged over rows, μ_id the identity's normalised mean unit row. */
function plainToward(x: number[][], identity: Int32Array, tau: number): number {
  const sums = new Map<number, number[]>();
  x.forEach((r, i) => {
    const u = unitRow(r);
    const s = sums.get(identity[i]) ?? u.map(() => 0);
    sums.set(
      identity[i],
      s.map((v, k) => v + u[k]),
    );
  });
  const mu = new Map([...sums].map(([id, s]) => [id, unitRow(s)]));
  const ctx = contextRows(x, tau);
  let total = 0;
  for (let i = 0; i < x.length; i++) {
    const m = mu.get(identity[i])!;
    total += dot(unitRow(ctx[i]), m) - dot(unitRow(x[i]), m);
  }
  return total / x.length;
}

/** 1 − cos(x̂ctx_i, x_i) averaged over rows, in plain JS. */
function plainShift(x: number[][], tau: number): number {
  const n = x.length;
  const d = x[0].length;
  const unit = x.map((r) => {
    const norm = Math.hypot(...r);
    return r.map((v) => v / norm);
  });
  let total = 0;
  for (let i = 0; i < n; i++) {
    const logits = unit.map((r, j) =>
      j === i ? -Infinity : r.reduce((a, v, k) => a + v * unit[i][k], 0) / (tau * Math.sqrt(d)),
    );
    const m = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - m));
    const z = e.reduce((a, b) => a + b, 0);
    const ctx = Array.from({ length: d }, (_, k) =>
      e.reduce((a, w, j) => a + (w / z) * x[j][k], 0),
    );
    const cos = ctx.reduce((a, v, k) => a + v * unit[i][k], 0) / Math.hypot(...ctx);
    total += 1 - cos;
  }
  return total / n;
}

test('one context: the shift is 1 − cos(x̂ctx, x), as computed by hand', () => {
  const rng = new Rng(5);
  const x = Array.from({ length: 8 }, () => Array.from({ length: 5 }, () => rng.normal()));
  const identity = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]);
  const tau = 0.6;
  const r = representationalShift(tf.tensor2d(x), identity, {
    logTauCtx: Math.log(tau),
    contextSize: 8,
    perIdentity: 4,
    contexts: 1,
  });
  // both kinds of context hold all 8 images (in some order): the same mean shift
  const want = plainShift(x, tau);
  assert.ok(Math.abs(r.random.mean - want) < 1e-5, `random ${r.random.mean} vs ${want}`);
  assert.ok(Math.abs(r.sameIdentity.mean - want) < 1e-5, `same ${r.sameIdentity.mean} vs ${want}`);
  const toward = plainToward(x, identity, tau);
  assert.ok(
    Math.abs(r.towardRandom.mean - toward) < 1e-5,
    `toward ${r.towardRandom.mean} vs ${toward}`,
  );
});

test('clustered embeddings: same-identity contexts pull each image towards its own identity', () => {
  const rng = new Rng(7);
  const centres = Array.from({ length: 40 }, () => Array.from({ length: 16 }, () => rng.normal()));
  const identity = Int32Array.from({ length: 400 }, (_, i) => i % 40);
  const x = Array.from(identity, (id) => centres[id].map((c) => c + 0.3 * rng.normal()));
  const r = representationalShift(tf.tensor2d(x), identity, {
    logTauCtx: Math.log(0.01),
    contexts: 30,
  });
  assert.ok(r.weightSameIdentity.mean > 0.9, `same-identity weight ${r.weightSameIdentity.mean}`);
  assert.ok(r.weightRandom.mean < r.weightSameIdentity.mean - 0.3, `random ${r.weightRandom.mean}`);
  assert.ok(
    r.sameIdentity.mean < r.random.mean,
    'same-identity context moves embeddings less off their identity',
  );
  assert.ok(r.towardSameIdentity.mean > 0, `towards its identity ${r.towardSameIdentity.mean}`);
  assert.ok(r.towardRandom.mean < r.towardSameIdentity.mean, `random ${r.towardRandom.mean}`);
});
