/**
 * The explorer page: picks a TF.js backend, loads the lab's exported models and
 * pixels (data.ts), and shows one view per tab. `window.__explore` holds the
 * page's state and each view's latest numbers (the browser tests read it).
 * URL options: ?backend=webgl|wasm|cpu forces a backend; ?view=<id> opens a view.
 */
import './style.css';
import * as tf from '@tensorflow/tfjs';
import { pickBackend } from './backend';
import { type Lab, loadLab } from './data';
import type { ExploreState } from './state';
import type { View } from './view';
import { captionView } from './views/caption';
import { fewShotView } from './views/fewshot';
import { lixpView } from './views/lixp';
import { llipView } from './views/llip';
import { spectraView } from './views/spectra';

declare global {
  interface Window {
    __explore: ExploreState;
  }
}

const VIEWS: View[] = [captionView, fewShotView, lixpView, llipView, spectraView];

const state: ExploreState = {
  ready: false,
  error: null,
  backend: null,
  view: null,
  loadSeconds: null,
  results: {},
  versions: {},
};
window.__explore = state;

const status = document.getElementById('status')!;
const tabs = document.getElementById('tabs')!;
const main = document.getElementById('main')!;

function fail(e: unknown) {
  const msg = e instanceof Error ? e.message : String(e);
  state.error = msg;
  status.textContent = `Error: ${msg}`;
  status.classList.add('error');
  console.error(e);
}

function setUp(lab: Lab) {
  const panels = new Map<string, HTMLElement>();
  const buttons = VIEWS.map((v, i) => {
    const b = document.createElement('button');
    b.id = `tab-${v.id}`;
    b.setAttribute('role', 'tab');
    b.setAttribute('aria-controls', `panel-${v.id}`);
    b.setAttribute('aria-selected', 'false');
    b.tabIndex = -1;
    b.textContent = `${i + 1} ${v.title}`;
    b.addEventListener('click', () => show(v.id));
    tabs.append(b);
    return b;
  });

  function show(id: string, focus = false) {
    const v = VIEWS.find((x) => x.id === id) ?? VIEWS[0];
    if (!panels.has(v.id)) {
      const panel = document.createElement('div');
      panel.id = `panel-${v.id}`;
      panel.setAttribute('role', 'tabpanel');
      panel.setAttribute('aria-labelledby', `tab-${v.id}`);
      main.append(panel);
      panels.set(v.id, panel);
      const report = (data: Record<string, unknown>) => {
        state.results[v.id] = data;
        state.versions[v.id] = (state.versions[v.id] ?? 0) + 1;
      };
      try {
        panel.append(v.build(lab, report));
      } catch (e) {
        fail(e);
      }
    }
    for (const [pid, p] of panels) p.hidden = pid !== v.id;
    VIEWS.forEach((x, i) => {
      const on = x.id === v.id;
      buttons[i].setAttribute('aria-selected', String(on));
      buttons[i].tabIndex = on ? 0 : -1;
      if (on && focus) buttons[i].focus();
    });
    state.view = v.id;
    const url = new URL(location.href);
    url.searchParams.set('view', v.id);
    history.replaceState(null, '', url);
  }

  tabs.addEventListener('keydown', (e) => {
    const i = VIEWS.findIndex((x) => x.id === state.view);
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    show(VIEWS[(i + step + VIEWS.length) % VIEWS.length].id, true);
  });
  document.addEventListener('keydown', (e) => {
    const t = e.target as HTMLElement;
    if (t.closest('input, textarea, select') || e.altKey || e.ctrlKey || e.metaKey) return;
    const n = Number(e.key);
    if (Number.isInteger(n) && n >= 1 && n <= VIEWS.length) show(VIEWS[n - 1].id, true);
  });
  show(new URLSearchParams(location.search).get('view') ?? VIEWS[0].id);
}

async function start() {
  const t0 = performance.now();
  const params = new URLSearchParams(location.search);
  state.backend = await pickBackend(params.get('backend'));
  const lab = await loadLab('data', (msg) => {
    status.textContent = msg;
  });
  state.loadSeconds = (performance.now() - t0) / 1000;
  const m = lab.manifest.models[0];
  status.textContent = `Running on TF.js ${state.backend} · ${lab.models.length} models (${m.preset} preset, ${m.steps} steps) · ${lab.manifest.gallery.count} gallery images · loaded in ${state.loadSeconds.toFixed(1)} s · offline from here on`;
  setUp(lab);
  state.ready = true;
}

window.addEventListener('error', (e) => fail(e.error ?? e.message));
window.addEventListener('unhandledrejection', (e) => fail(e.reason));
start().catch(fail);
// the tensors the page keeps are the models and caches; a count helps spot leaks
Object.defineProperty(state, 'tensors', { get: () => tf.memory().numTensors, enumerable: true });
