/**
 * Caption → images: type a caption, see the gallery images the model scores
 * highest for it, and pick one to see the zero-shot scores per class of a task
 * (the lab's prompt-ensembled class texts).
 */
import { captionProblems, captionScores, classShares, zeroShot } from '../compute';
import { type Lab, modelByKey, taskByName } from '../data';
import { bars, choice, debounce, h, radios, thumb } from '../ui';
import { intro, type Report, type View } from '../view';

const HITS = 12;

function topK(values: number[], k: number): number[] {
  return values
    .map((v, i) => [v, i])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}

function build(lab: Lab, report: Report): HTMLElement {
  const items = lab.manifest.gallery.items;
  const state = {
    model: lab.models[0].key as string,
    caption: 'a red star',
    task: 'shape',
    chosen: -1,
  };
  const hitsBox = h('div', { class: 'hits', role: 'group', 'aria-label': 'Retrieved images' });
  const warn = h('p', { class: 'warn', role: 'status' });
  const probNote = h('p', { class: 'note' });
  const zsBox = h('div', {});
  const input = h('input', {
    type: 'text',
    id: 'caption-input',
    value: state.caption,
    autocomplete: 'off',
    spellcheck: 'false',
  });

  function showZeroShot() {
    const lm = modelByKey(lab, state.model);
    const task = taskByName(lab, state.task);
    const i = state.chosen;
    const s = zeroShot(lab, lm, task, i);
    const truth = items[i].labels[task.name];
    const best = s.indexOf(Math.max(...s));
    const shares = classShares(lm, s);
    zsBox.replaceChildren(
      h(
        'div',
        { class: 'row' },
        thumb(lab.galleryBytes, i, 128, items[i].caption),
        h(
          'div',
          {},
          h('p', {}, `“${items[i].caption}”`),
          h('p', { class: 'note' }, `gallery image ${i}`),
        ),
      ),
      h(
        'p',
        {},
        `${lm.entry.label} calls it `,
        h('strong', {}, task.classNames[best]),
        truth === null || truth === undefined
          ? ` (the ${task.name} task does not apply to this image)`
          : truth === best
            ? ' — right.'
            : ` — the answer is ${task.classNames[truth]}.`,
      ),
      bars(
        task.classNames.map((c, k) => ({
          label: c,
          value: shares[k],
          text: `${(100 * shares[k]).toFixed(0)}% · cos ${s[k].toFixed(3)}`,
          top: k === best,
          truth: k === truth,
        })),
      ),
      h(
        'p',
        { class: 'note' },
        `bars: softmax over the classes of t·cos, t = ${lm.entry.label}’s learned scale`,
      ),
    );
    return { task: task.name, scores: s, predicted: best, truth };
  }

  function update() {
    const lm = modelByKey(lab, state.model);
    const { unknown, dropped } = captionProblems(lab, state.caption);
    warn.textContent = [
      unknown.length ? `Not in the world's vocabulary (read as <unk>): ${unknown.join(', ')}.` : '',
      dropped.length
        ? `Beyond ${lab.tokenizer.contextLength - 1} words, dropped: ${dropped.join(' ')}.`
        : '',
    ].join(' ');
    const r = captionScores(lab, lm, state.caption);
    const top = topK(r.scores, HITS);
    if (!top.includes(state.chosen)) state.chosen = top[0];
    probNote.textContent =
      r.probability === 'sigmoid'
        ? `score = the objective's cosine; p = σ(t·score + b) with t = ${r.t.toFixed(2)}, b = ${r.b!.toFixed(2)}: each pair on its own (sigmoid loss).`
        : `score = cosine; p = softmax over the ${items.length} gallery images of t·score, t = ${r.t.toFixed(2)} (softmax loss: shares that sum to 1).`;
    hitsBox.replaceChildren(
      ...top.map((i, rank) => {
        const b = h(
          'button',
          {
            class: 'hit',
            'aria-pressed': String(i === state.chosen),
            'aria-label': `rank ${rank + 1}: ${items[i].caption}, score ${r.scores[i].toFixed(3)}`,
            'data-index': i,
          },
          thumb(lab.galleryBytes, i, 96, items[i].caption),
          h('span', {}, `${r.scores[i].toFixed(3)}`),
          h('span', {}, `p ${r.probabilities[i].toFixed(2)}`),
        );
        b.addEventListener('click', () => {
          state.chosen = i;
          for (const x of hitsBox.children) x.setAttribute('aria-pressed', String(x === b));
          report({ ...last, chosen: i, zeroShot: showZeroShot() });
        });
        return b;
      }),
    );
    const zs = showZeroShot();
    const last = {
      model: state.model,
      caption: state.caption,
      scores: r.scores,
      probabilities: r.probabilities,
      top,
      chosen: state.chosen,
      unknown,
    };
    report({ ...last, zeroShot: zs });
  }

  input.addEventListener(
    'input',
    debounce(() => {
      state.caption = input.value;
      update();
    }, 150),
  );
  const models = lab.models.map((m) => ({ value: m.key, label: m.entry.label }));
  const tasks = lab.manifest.tasks.map((t) => ({ value: t.name, label: t.name }));
  const panel = h(
    'section',
    {},
    ...intro(
      'Caption → images',
      'Type a caption in the world’s language (shapes, garments, colours, sizes, textures, counts, positions). The model scores every gallery image against it; the best twelve are shown. Pick one to see how the model classifies it zero-shot, from the prompts alone.',
    ),
    radios('caption-model', 'Model', models, state.model, (v) => {
      state.model = v;
      update();
    }),
    h('p', {}, h('label', { for: 'caption-input' }, 'Caption'), input),
    warn,
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'col panel' }, h('h3', {}, 'Images it retrieves'), hitsBox, probNote),
      h(
        'div',
        { class: 'col panel' },
        h('h3', {}, 'Zero-shot scores per class'),
        choice('Task', tasks, state.task, (v) => {
          state.task = v;
          update();
        }),
        zsBox,
      ),
    ),
  );
  update();
  return panel;
}

export const captionView: View = { id: 'caption', title: 'Caption → images', build };
