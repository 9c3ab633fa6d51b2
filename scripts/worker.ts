/**
 * A sweep worker for any machine that can reach the Redis of the sweep:
 *   npm run worker -- --queue redis://:<password>@host:6379 [--out out/sweeps] [--lock-ms 30000] [--insecure]
 * Pulls one run at a time from the BullMQ queue, checks it (lib/runs/queue.ts
 * `openJob`: signature when LAB_QUEUE_SECRET is set, shape, grid name, config,
 * id; a bad job fails for good before anything is written or spawned), trains it
 * with the train CLI and returns its result rows to the sweep that enqueued it.
 * A remote Redis without a password is refused unless --insecure. Ctrl-C stops
 * the current run; BullMQ hands that job to another worker once its lock expires.
 */
import { parseArgs } from 'node:util';
import { startWorker } from '../lib/runs/queue';
import { liveChildren } from '../lib/runs/sweep';

const { values } = parseArgs({
  options: {
    queue: { type: 'string' },
    out: { type: 'string', default: 'out/sweeps' },
    'lock-ms': { type: 'string', default: '30000' },
    insecure: { type: 'boolean', default: false },
  },
});
if (!values.queue) {
  console.error('worker: --queue redis://host:port is required');
  process.exit(2);
}
let worker: ReturnType<typeof startWorker>;
try {
  worker = startWorker(values.queue, {
    out: values.out ?? 'out/sweeps',
    lockMs: Number(values['lock-ms']),
    insecure: values.insecure,
  });
} catch (e) {
  console.error(`worker: ${(e as Error).message}`);
  process.exit(2);
}
const where = values.queue.replace(/\/\/[^@/]*@/, '//***@'); // never print the password
const signed = process.env.LAB_QUEUE_SECRET
  ? 'signed jobs only'
  : 'jobs unsigned (no LAB_QUEUE_SECRET)';
console.log(`[worker] pulling from ${where}, runs in ${values.out}, ${signed}`);

async function stop() {
  for (const c of liveChildren) c.kill('SIGTERM');
  setTimeout(() => process.exit(130), 5000).unref(); // close waits on Redis, which may be gone
  await worker.close(true);
  process.exit(130);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
