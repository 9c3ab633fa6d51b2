/**
 * Llip: the image tower outputs K mixture tokens; the caption's query decides,
 * per head, how to mix them into the image vector it is compared with. Two
 * captions about different attributes of one image give two mixtures.
 */
import type { LlipConfig } from '../../../lib/objectives/llip';
import { captionProblems, llipMixing } from '../compute';
import type { Lab, LoadedModel } from '../data';
import type { GalleryItem } from '../manifest';
import { colour, debounce, h, heatmap, legend, thumb } from '../ui';
import { galleryPicker, intro, type Report, type View } from '../view';

/** Two captions about different attributes of an image: its colour, then its size and kind. */
export function suggestCaptions(it: GalleryItem): [string, string] {
  const a = it.attributes;
  return [`a ${a.colour} object`, `a ${a.size} ${a.object}`];
}

function phiMap(
  phi: number[][],
  title: string,
  scale: (v: number) => number,
  map: (t: number) => string,
) {
  const M = phi.length;
  const T = phi[0].length;
  return heatmap(phi, {
    rowLabels: Array.from({ length: M }, (_, m) => `head ${m + 1}`),
    colLabels: Array.from({ length: T }, (_, k) => `k${k + 1}`),
    scale,
    map,
    cell: '2.1rem',
    rowHeight: '2rem',
    digits: 2,
    caption: title,
  });
}

function build(lab: Lab, report: Report): HTMLElement {
  const lm: LoadedModel | undefined = lab.models.find((m) => m.key === 'llip');
  if (!lm) return h('section', {}, h('p', { class: 'warn' }, 'The assets have no Llip model.'));
  const cfg = lm.entry.objective as LlipConfig;
  const items = lab.manifest.gallery.items;
  const state = { index: 0, captions: suggestCaptions(items[0]) as string[] };
  const inputs = [0, 1].map((c) =>
    h('input', {
      type: 'text',
      id: `llip-caption-${c}`,
      value: state.captions[c],
      autocomplete: 'off',
      spellcheck: 'false',
    }),
  );
  const maps = h('div', { class: 'row' });
  const warn = h('p', { class: 'warn', role: 'status' });
  const chosen = h('div', { class: 'row' });

  function update() {
    state.captions = inputs.map((x) => x.value);
    const r = llipMixing(lab, lm!, state.index, state.captions);
    const diff = r.phi[1].map((row, m) => row.map((v, k) => v - r.phi[0][m][k]));
    const dmax = Math.max(1e-6, ...diff.flat().map(Math.abs));
    const pmax = Math.max(...r.phi.flat(2));
    const it = items[state.index];
    chosen.replaceChildren(
      thumb(lab.galleryBytes, state.index, 128, it.caption),
      h('p', {}, `“${it.caption}”`),
    );
    warn.textContent = state.captions
      .map((c, i) => {
        const u = captionProblems(lab, c).unknown;
        return u.length ? `Caption ${i ? 'B' : 'A'}: not in the vocabulary: ${u.join(', ')}.` : '';
      })
      .join(' ');
    maps.replaceChildren(
      ...[0, 1].map((c) =>
        h(
          'div',
          { class: 'panel' },
          h('h3', {}, `Φ for caption ${c ? 'B' : 'A'}`),
          h('p', { class: 'note' }, `“${state.captions[c]}” · score ${r.scores[c].toFixed(3)}`),
          phiMap(
            r.phi[c],
            `mixing weights for caption ${c ? 'B' : 'A'}`,
            (v) => v / pmax,
            colour.seq,
          ),
          legend(colour.seq, '0', pmax.toFixed(2), 'Φ'),
        ),
      ),
      h(
        'div',
        { class: 'panel' },
        h('h3', {}, 'B − A'),
        h('p', { class: 'note' }, 'where caption B moves the weight'),
        phiMap(
          diff,
          'difference of the mixing weights, B minus A',
          (v) => 0.5 + v / (2 * dmax),
          colour.div,
        ),
        legend(colour.div, `−${dmax.toFixed(2)}`, `+${dmax.toFixed(2)}`, 'B − A'),
      ),
    );
    report({ index: state.index, captions: state.captions, phi: r.phi, scores: r.scores });
  }

  const typed = debounce(update, 150);
  for (const x of inputs) x.addEventListener('input', typed);
  const grid = galleryPicker(lab, (i) => {
    state.index = i;
    update();
  });
  const suggest = h('button', {}, 'Suggest two captions for this image');
  suggest.addEventListener('click', () => {
    const [a, b] = suggestCaptions(items[state.index]);
    inputs[0].value = a;
    inputs[1].value = b;
    update();
  });
  const T = cfg.mixtureTokens;
  const panel = h(
    'section',
    {},
    ...intro(
      'Llip: one image, two captions, two mixtures',
      `The image tower outputs K = ${T} mixture tokens. For each caption, Llip’s cross-attention (${cfg.heads} heads, τ = ${cfg.tau}) turns the caption into a query and mixes the tokens into the image vector that caption is compared with. Φ: one row per head, one column per token, each row sums to 1. Type two captions about different attributes and watch the weights move.`,
    ),
    h('div', { class: 'row' }, h('div', {}, grid.el), h('div', { class: 'col' }, chosen, suggest)),
    h(
      'div',
      { class: 'row' },
      h('p', { class: 'col' }, h('label', { for: 'llip-caption-0' }, 'Caption A'), inputs[0]),
      h('p', { class: 'col' }, h('label', { for: 'llip-caption-1' }, 'Caption B'), inputs[1]),
    ),
    warn,
    maps,
  );
  update();
  return panel;
}

export const llipView: View = { id: 'llip', title: 'Llip mixing', build };
