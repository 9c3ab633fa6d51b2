/** The page's state on `window.__explore` (main.ts keeps it; the browser tests read it). */
export interface ExploreState {
  ready: boolean;
  error: string | null;
  backend: string | null;
  view: string | null;
  loadSeconds: number | null;
  /** each view's latest numbers, and how many times it reported */
  results: Record<string, Record<string, unknown>>;
  versions: Record<string, number>;
  /** live TF.js tensors (a getter): the models and caches, flat while the page is used */
  tensors?: number;
}
