/** `npm run fewshot -- <run dir> …`: the few-shot suite on finished runs (lib/runs/fewshot-cli.ts). */
import { fewShotCli } from '../lib/runs/fewshot-cli';

fewShotCli(process.argv.slice(2)).then((code) => process.exit(code));
