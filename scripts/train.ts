/** `npm run train -- …`: the training command line of lib/runs/train-cli.ts (see there). */
import { trainCli } from '../lib/runs/train-cli';

trainCli(process.argv.slice(2)).then((code) => process.exit(code));
