/**
 * Image → neighbours and a k-shot prototype decision, two models side by side
 * (SigLIP and LIxP by default): LIxP is trained to use a support set, so this
 * is where the two should differ.
 */
import { classShares, fewShot, neighbours } from '../compute';
import { type Lab, modelByKey, taskByName } from '../data';
import { bars, choice, h, radios, thumb } from '../ui';
import { galleryPicker, intro, type Report, type View } from '../view';

const NEIGHBOURS = 8;

function build(lab: Lab, report: Report): HTMLElement {
  const items = lab.manifest.gallery.items;
  const keys = lab.models.map((m) => m.key as string);
  const state = {
    index: 0,
    task: 'shape',
    k: 4,
    seed: 0,
    models: [
      keys.includes('siglip') ? 'siglip' : keys[0],
      keys.includes('lixp') ? 'lixp' : keys[1],
    ],
  };
  const chosen = h('div', {});
  const columns = [h('div', { class: 'col panel' }), h('div', { class: 'col panel' })];

  function column(side: 0 | 1) {
    const lm = modelByKey(lab, state.models[side]);
    const task = taskByName(lab, state.task);
    const nn = neighbours(lm, state.index, NEIGHBOURS);
    const fs = fewShot(lab, lm, task, state.index, state.k, state.seed);
    const truth = items[state.index].labels[task.name];
    const best = fs.scores.indexOf(Math.max(...fs.scores));
    const shares = classShares(lm, fs.scores);
    const verdict =
      truth === null || truth === undefined
        ? `(the ${task.name} task does not apply to this image)`
        : truth === best
          ? '— right.'
          : `— the answer is ${task.classNames[truth]}.`;
    const models = lab.models.map((m) => ({ value: m.key, label: m.entry.label }));
    columns[side].replaceChildren(
      choice(`Model ${side ? 'B' : 'A'}`, models, state.models[side], (v) => {
        state.models[side] = v;
        update();
      }),
      h('h3', {}, `Nearest neighbours (${lm.entry.label})`),
      h(
        'div',
        { class: 'hits' },
        ...nn.map(({ index, sim }) =>
          h(
            'div',
            { class: 'hit' },
            thumb(lab.galleryBytes, index, 56, items[index].caption),
            h('span', {}, sim.toFixed(3)),
          ),
        ),
      ),
      h(
        'h3',
        {},
        `${state.k}-shot prototypes: `,
        h('strong', {}, task.classNames[best]),
        ` ${verdict}`,
      ),
      bars(
        task.classNames.map((c, k) => ({
          label: c,
          value: shares[k],
          text: `${(100 * shares[k]).toFixed(0)}% · cos ${fs.scores[k].toFixed(3)}`,
          top: k === best,
          truth: k === truth,
        })),
      ),
      h(
        'p',
        { class: 'note' },
        `The ${state.k} support image(s) behind “${task.classNames[best]}”:`,
      ),
      h(
        'div',
        { class: 'hits' },
        ...fs.shots[best].map((j) =>
          thumb(lab.supportBytes, task.first + j, 48, `support image of ${task.classNames[best]}`),
        ),
      ),
    );
    return { model: lm.key, neighbours: nn, scores: fs.scores, predicted: best, truth };
  }

  function update() {
    const it = items[state.index];
    chosen.replaceChildren(
      thumb(lab.galleryBytes, state.index, 160, it.caption),
      h(
        'div',
        {},
        h('p', {}, `“${it.caption}”`),
        h(
          'p',
          { class: 'note' },
          Object.entries(it.attributes)
            .map(([k, v]) => `${k}: ${v}`)
            .join(' · '),
        ),
      ),
    );
    const a = column(0);
    const b = column(1);
    report({ index: state.index, task: state.task, k: state.k, seed: state.seed, a, b });
  }

  const grid = galleryPicker(lab, (i) => {
    state.index = i;
    update();
  });
  const tasks = lab.manifest.tasks.map((t) => ({ value: t.name, label: t.name }));
  const shots = [1, 4, 16].map((k) => ({ value: String(k), label: `${k}-shot` }));
  chosen.className = 'row';
  chosen.style.flexWrap = 'nowrap';
  const panel = h(
    'section',
    {},
    ...intro(
      'Image → neighbours and few-shot',
      'Pick an image (arrow keys move through the gallery). Each model finds its nearest neighbours in the gallery, and classifies it with k labelled support images per class: a class’s prototype is the mean of its support embeddings, and the nearest prototype wins (bars: softmax of t·cos over the classes). New draw picks other support images.',
    ),
    h(
      'div',
      { class: 'row' },
      h('div', {}, grid.el),
      h(
        'div',
        { class: 'col' },
        chosen,
        h(
          'div',
          { class: 'row' },
          choice('Task', tasks, state.task, (v) => {
            state.task = v;
            update();
          }),
          radios('fewshot-k', 'Shots', shots, String(state.k), (v) => {
            state.k = Number(v);
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
            'New draw',
          ),
        ),
      ),
    ),
    h('div', { class: 'row' }, ...columns),
  );
  update();
  return panel;
}

export const fewShotView: View = { id: 'fewshot', title: 'Neighbours & few-shot', build };
