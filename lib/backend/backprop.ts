/**
 * Reverse mode that frees as it goes (issue 17: peak memory).
 *
 * TF.js's `engine.gradients` (behind tf.grads, tf.variableGrads and the
 * optimizers) keeps every tensor saved for the backward pass, and the gradient
 * of every intermediate tensor, until the whole backward pass has ended: the
 * peak of a training step holds all activations plus all their gradients. This
 * replacement walks the same filtered tape in the same order, calling the same
 * gradient functions and accumulating with the same Add, so the gradients are
 * the same bits; it differs only in what it frees and when:
 * - a node's saved tensors, once its gradient has run (each node saves its own
 *   clones, so no other node reads them);
 * - the gradient of each of a node's outputs, once that node has used it: a
 *   tensor has one producer, and its consumers all come later on the tape, so
 *   its gradient is complete and spent when the walk reaches its producer.
 * Kept: the gradients asked for (xs), a dy the caller passed, and any tensor a
 * gradient function handed back unchanged as another input's gradient.
 * Higher-order gradients (a tape inside a tape) keep the stock behaviour.
 *
 * `installBackprop()` swaps it in on the engine (initBackend does, unless
 * LAB_EARLY_FREE=0); `uninstallBackprop()` restores TF.js's own.
 */
import * as tf from '@tensorflow/tfjs';

type Tensor = tf.Tensor;
type GradFn = (dys: (Tensor | null)[]) => Record<string, () => Tensor>;

/** A node of the engine's tape (tfjs-core's TapeNode). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, Tensor>;
  outputs: Tensor[];
  gradient?: GradFn;
  saved?: Tensor[];
}

/** The engine members `gradients` uses (tfjs-core's Engine). */
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients: GradientsFn;
}

type GradientsFn = (
  f: () => Tensor,
  xs: Tensor[],
  dy?: Tensor,
  allowNoGradients?: boolean,
) => { value: Tensor; grads: Tensor[] };

/**
 * The nodes on a path from some x to y, in tape order, each with only the inputs
 * that depend on an x (the stock engine's filter, same order and same pruning).
 */
export function pathNodes(tape: TapeNode[], xs: Tensor[], y: Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape)
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodeFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  const toY = new Set([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (!node.outputs.some((o) => toY.has(o.id))) continue;
    nodeToY.add(node.id);
    for (const t of Object.values(node.inputs)) toY.add(t.id);
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodeFromX.has(node.id) || !nodeToY.has(node.id)) continue;
    const inputs: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/**
 * Walks `nodes` backward from `grads` (tensor id → its gradient so far), freeing
 * as described above when `free`; `keep` holds the ids whose gradients must survive.
 */
export function backprop(
  grads: Map<number, Tensor>,
  nodes: TapeNode[],
  tidy: <T extends Tensor>(f: () => T) => T,
  keep: Set<number>,
  free: boolean,
): void {
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
    if (!node.gradient)
      throw new Error(
        `Cannot compute gradient: gradient function not found for ${node.kernelName}.`,
      );
    const inputGrads = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      if (!(name in inputGrads))
        throw new Error(
          `Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGrads)}.`,
        );
      const dx = tidy(() => inputGrads[name]());
      if (dx.dtype !== 'float32')
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      if (!tf.util.arraysEqual(dx.shape, x.shape))
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      const prev = grads.get(x.id);
      if (!prev) grads.set(x.id, dx);
      else {
        grads.set(x.id, tf.add(prev, dx));
        prev.dispose();
      }
    }
    if (!free) continue;
    const spent = node.outputs.filter((o) => grads.has(o.id) && !keep.has(o.id));
    for (const o of spent) grads.delete(o.id);
    const live = new Set(grads.values()); // a tensor handed back as some gradient stays
    for (const t of node.saved ?? []) if (!live.has(t)) t.dispose();
    for (let j = 0; j < node.outputs.length; j++) {
      const dy = dys[j];
      if (dy && spent.includes(node.outputs[j]) && !live.has(dy)) dy.dispose();
    }
  }
}

let stock: GradientsFn | null = null;

/** Swaps the freeing backprop in on TF.js's engine (idempotent). */
export function installBackprop(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (stock) return;
  stock = engine.gradients;
  engine.gradients = function (this: EngineInternals, f, xs, dy, allowNoGradients = false) {
    if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32')
      throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = this.scopedRun(
      () => this.startTape(),
      () => this.endTape(),
      () => this.tidy('forward', f),
    );
    if (!(y instanceof tf.Tensor))
      throw new Error('The result y returned by f() must be a tensor.');
    const tape = this.state.activeTape ?? [];
    const nodes = pathNodes(tape, xs, y);
    if (!allowNoGradients && nodes.length === 0)
      throw new Error(
        'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.',
      );
    return this.tidy('backward', () => {
      const grads = new Map<number, Tensor>([[y.id, dy ?? tf.onesLike(y)]]);
      const keep = new Set(xs.map((x) => x.id));
      if (dy) keep.add(y.id);
      const firstOrder = this.state.gradientDepth === 0;
      backprop(grads, nodes, (g) => this.tidy(g), keep, firstOrder);
      const out = xs.map((x) => grads.get(x.id) as Tensor);
      if (firstOrder) {
        for (const node of tape) for (const t of node.saved ?? []) t.dispose();
        this.state.activeTape = null;
      }
      return { value: y, grads: out };
    });
  };
}

/** Restores TF.js's own `engine.gradients`. */
export function uninstallBackprop(): void {
  if (!stock) return;
  (tf.engine() as unknown as EngineInternals).gradients = stock;
  stock = null;
}
