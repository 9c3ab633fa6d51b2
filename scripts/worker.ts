/**
 * A sweep worker for any machine that can reach the Redis of the sweep:
 *   npm run worker -- --queue redis://host:6379 [--out out/sweeps] [--lock-ms 30000]
 * Pulls one run at a time from the BullMQ queue, trains it with the train CLI and
 * returns its result rows to the sweep that enqueued it. Ctrl-C stops the current
 * run; BullMQ hands that job to another worker once its lock expires.
 */
import { parseArgs } from 'node:util';
import { startWorker } from '../lib/runs/queue';
import { liveChildren } from '../lib/runs/sweep';

const { values } = parseArgs({
  options: {
    queue: { type: 'string' },
    out: { type: 'string', default: 'out/sweeps' },
    'lock-ms': { type: 'string', default: '30000' },
  },
});
if (!values.queue) {
  console.error('worker: --queue redis://host:port is required');
  process.exit(2);
}
const worker = startWorker(values.queue, {
  out: values.out ?? 'out/sweeps',
  lockMs: Number(values['lock-ms']),
});
console.log(`[worker] pulling from ${values.queue}, runs in ${values.out}`);

async function stop() {
  for (const c of liveChildren) c.kill('SIGTERM');
  setTimeout(() => process.exit(130), 5000).unref(); // close waits on Redis, which may be gone
  await worker.close(true);
  process.exit(130);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
