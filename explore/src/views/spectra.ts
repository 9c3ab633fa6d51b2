/**
 * Spectra: the singular values of the covariance of each model's image
 * features over the gallery (lib/eval/spectrum.ts), on a log scale, and the
 * effective rank that sums each one up. A curve that drops off a cliff means
 * the features use few directions (dimensional collapse).
 */
import { spectrum } from '../compute';
import type { Lab } from '../data';
import { h, logLines } from '../ui';
import { intro, MODEL_COLOURS, type Report, type View } from '../view';

function build(lab: Lab, report: Report): HTMLElement {
  const results = lab.models.map((lm) => ({ lm, r: spectrum(lab, lm) }));
  const table = h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'model'),
        h('th', {}, 'features (rows × dims)'),
        h('th', {}, 'effective rank'),
        h('th', {}, 'σ₁'),
      ),
    ),
    h(
      'tbody',
      {},
      ...results.map(({ lm, r }) =>
        h(
          'tr',
          {},
          h(
            'td',
            {},
            h(
              'span',
              { style: `color:${MODEL_COLOURS[lm.key]};font-weight:700` },
              `■ ${lm.entry.label}`,
            ),
          ),
          h('td', {}, `${r.rows} × ${r.dims}`),
          h('td', {}, r.effectiveRank.toFixed(1)),
          h('td', {}, r.values[0].toExponential(2)),
        ),
      ),
    ),
  );
  const chart = logLines(
    results.map(({ lm, r }) => ({
      label: lm.entry.label,
      values: r.values,
      colour: MODEL_COLOURS[lm.key],
    })),
    {
      width: 900,
      height: 480,
      title: 'Singular values of the image-feature covariance, log scale',
    },
  );
  report({
    models: results.map(({ lm, r }) => ({
      key: lm.key,
      effectiveRank: r.effectiveRank,
      values: r.values,
    })),
  });
  return h(
    'section',
    {},
    ...intro(
      'Spectra of the image features',
      `Each model embeds the ${lab.manifest.gallery.count} gallery images; rows are L2-normalised and centred, and the singular values of their covariance are plotted largest first (Jacobi eigenvalues in float64). SigLIP, CLIP and LIxP: the pooled image embedding. Llip: its K mixture tokens, each a row, as the Llip paper does. Effective rank = exp(entropy of the normalised values): 1 is one direction, the dimension is a flat spectrum. Values below the axis are drawn on it.`,
    ),
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'panel' }, chart),
      h('div', { class: 'col' }, table),
    ),
  );
}

export const spectraView: View = { id: 'spectra', title: 'Spectra', build };
