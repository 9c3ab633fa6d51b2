/** What a view is: a tab that builds its panel on first use and reports what it computed. */
import type { Lab } from './data';
import type { ExploreModelKey } from './manifest';

/** Hands a view's latest numbers to the page state (tests and the curious read them). */
export type Report = (data: Record<string, unknown>) => void;

export interface View {
  id: string;
  title: string;
  build: (lab: Lab, report: Report) => HTMLElement;
}

/** One colour per model (Okabe–Ito: distinguishable with colour-vision deficiencies). */
export const MODEL_COLOURS: Record<ExploreModelKey, string> = {
  siglip: '#0072B2',
  clip: '#D55E00',
  lixp: '#009E73',
  llip: '#CC79A7',
};

/** A title and a few sentences saying what the view shows. */
export function intro(title: string, text: string): HTMLElement[] {
  const h = document.createElement('h2');
  h.textContent = title;
  const p = document.createElement('p');
  p.className = 'note';
  p.textContent = text;
  return [h, p];
}
