/** What a view is: a tab that builds its panel on first use and reports what it computed. */
import type { Lab } from './data';
import type { ExploreModelKey } from './manifest';
import { imageGrid } from './ui';

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

/** The gallery as a grid to pick one image from (the neighbours and Llip views). */
export function galleryPicker(
  lab: Lab,
  onSelect: (index: number) => void,
): ReturnType<typeof imageGrid> {
  const captions = lab.manifest.gallery.items.map((x) => x.caption);
  return imageGrid(lab.galleryBytes, captions, {
    columns: 16,
    size: 40,
    label: 'Gallery: pick an image',
    selected: 0,
    onSelect,
  });
}
