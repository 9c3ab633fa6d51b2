/**
 * LIxP's context attention: during training each image attends to the rest of
 * its batch (softmax of cosines over τctx, itself masked). The heat-map shows
 * that attention for a batch of gallery images; a row is where one image looks.
 */

import { Rng } from '../../../lib/rng';
import { lixpAttention } from '../compute';
import type { Lab } from '../data';
import { choice, colour, h, heatmap, legend, radios, thumb } from '../ui';
import { intro, type Report, type View } from '../view';

/** B gallery indices: uniform, or from a few identities so that structure can show. */
function drawBatch(lab: Lab, B: number, kind: string, seed: number): number[] {
  const items = lab.manifest.gallery.items;
  const rng = new Rng(1000 + seed);
  const all = items.map((_, i) => i);
  const byIdentity = (xs: number[]) =>
    xs.sort((a, b) => items[a].identity - items[b].identity || a - b); // same objects side by side
  if (kind === 'random') return byIdentity(rng.shuffle(all).slice(0, B));
  const byId = new Map<number, number[]>();
  for (const i of all) byId.set(items[i].identity, [...(byId.get(items[i].identity) ?? []), i]);
  const ids = rng.shuffle([...byId.keys()].filter((id) => byId.get(id)!.length >= B / 4));
  const out: number[] = [];
  for (const id of ids.slice(0, 4)) out.push(...rng.shuffle(byId.get(id)!).slice(0, B / 4));
  return byIdentity(out);
}

function build(lab: Lab, report: Report): HTMLElement {
  const lm = lab.models.find((m) => m.key === 'lixp');
  const items = lab.manifest.gallery.items;
  if (!lm) return h('section', {}, h('p', { class: 'warn' }, 'The assets have no LIxP model.'));
  const state = { B: 16, kind: 'identities', seed: 0, row: 0 };
  const out = h('div', {});
  const rowBox = h('div', {});
  const stats = h('dl', { class: 'kv' });
  let batch: number[] = [];
  let attention: number[][] = [];

  function showRow() {
    const row = attention[state.row];
    const order = row
      .map((p, j) => [p, j])
      .filter(([, j]) => j < batch.length && j !== state.row)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 5);
    rowBox.replaceChildren(
      h('h3', {}, `Where image ${state.row + 1} looks`),
      h(
        'div',
        { class: 'hits' },
        h(
          'div',
          { class: 'hit chosen' },
          thumb(lab.galleryBytes, batch[state.row], 72, items[batch[state.row]].caption),
          h('span', {}, 'query'),
        ),
        ...order.map(([p, j]) =>
          h(
            'div',
            { class: 'hit' },
            thumb(lab.galleryBytes, batch[j], 72, items[batch[j]].caption),
            h('span', {}, p.toFixed(3)),
          ),
        ),
      ),
    );
  }

  function update() {
    batch = drawBatch(lab, state.B, state.kind, state.seed);
    const r = lixpAttention(lab, lm!, batch);
    attention = r.attention;
    state.row = Math.min(state.row, state.B - 1);
    const M = attention[0].length;
    const label = (j: number) => {
      const i = batch[j % batch.length];
      const t = thumb(lab.galleryBytes, i, 28, items[i].caption);
      return j < batch.length ? t : h('span', { title: items[i].caption }, 'txt');
    };
    // uniform attention sits at a third of the colour scale, whatever B
    const hi = Math.max(3 / (state.B - 1), ...attention.flat());
    out.replaceChildren(
      heatmap(attention, {
        rowLabels: batch.map((_, j) => label(j)),
        colLabels: Array.from({ length: M }, (_, j) => label(j)),
        scale: (v) => v / (hi || 1),
        map: colour.seq,
        cell: state.B > 16 ? '26px' : '34px',
        masked: (r0, c) => c === r0,
        caption: `LIxP context attention over a batch of ${state.B} images`,
      }),
      legend(colour.seq, '0', hi.toFixed(2), 'attention weight'),
    );
    stats.replaceChildren(
      h('dt', {}, 'τctx (learned)'),
      h('dd', {}, r.tauCtx.toFixed(3)),
      h('dt', {}, 'row entropy'),
      h(
        'dd',
        {},
        `${r.entropy.toFixed(2)} nats (uniform over the others: ${Math.log(state.B - 1).toFixed(2)})`,
      ),
      h('dt', {}, 'weight on the same object'),
      h('dd', {}, `${r.sameIdentity.toFixed(3)} (uniform attention: ${r.chance.toFixed(3)})`),
    );
    showRow();
    report({ batch, ...r });
  }

  const rows = () =>
    Array.from({ length: state.B }, (_, j) => ({ value: String(j), label: `image ${j + 1}` }));
  let rowSelect = choice('Query row', rows(), '0', (v) => {
    state.row = Number(v);
    showRow();
  });
  const sizes = [8, 16, 24].map((b) => ({ value: String(b), label: String(b) }));
  const kinds = [
    { value: 'identities', label: '4 objects, several images each' },
    { value: 'random', label: 'random' },
  ];
  const controls = h(
    'div',
    { class: 'row' },
    radios('lixp-b', 'Batch', sizes, String(state.B), (v) => {
      state.B = Number(v);
      const fresh = choice('Query row', rows(), '0', (x) => {
        state.row = Number(x);
        showRow();
      });
      rowSelect.replaceWith(fresh);
      rowSelect = fresh;
      state.row = 0;
      update();
    }),
    radios('lixp-kind', 'Images', kinds, state.kind, (v) => {
      state.kind = v;
      update();
    }),
    h(
      'button',
      {
        onclick: () => {
          state.seed++;
          update();
        },
      },
      'New batch',
    ),
  );
  const panel = h(
    'section',
    {},
    ...intro(
      'LIxP: context attention over a batch',
      'During training LIxP lets each image embedding attend to the other images of its batch (softmax of cosine similarities over a learned temperature τctx; an image never attends to itself) and adds a second SigLIP loss on the result. Row i: how image i spreads its attention; images of the same object sit side by side. At test time nothing changes: this is what training asked of the embeddings.',
    ),
    controls,
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'panel' }, out),
      h('div', { class: 'col' }, stats, rowSelect, rowBox),
    ),
  );
  update();
  return panel;
}

export const lixpView: View = { id: 'lixp', title: 'LIxP context', build };
