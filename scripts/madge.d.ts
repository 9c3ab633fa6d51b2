/** The part of madge's API that scripts/check-imports.ts uses (madge ships no types). */
declare module 'madge' {
  interface MadgeResult {
    /** file (relative to the base dir) → the files it imports */
    obj(): Record<string, string[]>;
    /** each import cycle as a list of files */
    circular(): string[][];
  }
  interface MadgeConfig {
    fileExtensions?: string[];
    tsConfig?: string;
    excludeRegExp?: RegExp[];
  }
  export default function madge(path: string, config?: MadgeConfig): Promise<MadgeResult>;
}
