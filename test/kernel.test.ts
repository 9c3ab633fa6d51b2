/**
 * The notebook kernel against the Jupyter protocol (issue 16). jupyter/kernel.js wraps
 * tslab's kernel; these tests run the Jupyter project's own kernel test suite
 * (jupyter_kernel_test, Debian's python3-jupyter-kernel-test, through test/kernel_protocol.py)
 * against the lab's kernelspec and against tslab as shipped (which must fail the four tests
 * the wrapper fixes), then check each fix message by message (test/kernel_probe.py).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const ROOT = path.join(__dirname, '..');
const PYTHON = '/usr/bin/python3';
const JUPYTER = path.join(ROOT, 'jupyter');
const TSLAB = path.join(ROOT, 'node_modules', 'tslab');
const DEBIAN = 'python3-jupyter-kernel-test';

// biome-ignore lint/suspicious/noExplicitAny: protocol messages of many shapes
type Msg = { msg_type: string; content: Record<string, any> };
type Exchange = { reply: Msg; outputs: Msg[] };

function python(args: string[], opts: { jupyterPath?: string; env?: object; input?: string } = {}) {
  const res = spawnSync(PYTHON, args, {
    cwd: ROOT,
    encoding: 'utf8',
    input: opts.input,
    timeout: 300_000,
    env: {
      ...process.env,
      JUPYTER_PATH: opts.jupyterPath ?? JUPYTER,
      PYDEVD_DISABLE_FILE_VALIDATION: '1',
      ...opts.env,
    },
  });
  if (res.error)
    assert.fail(`cannot run ${PYTHON} (${res.error.message}): install Debian's python3`);
  return res;
}

/** Fails (never skips) with the Debian package to install when the suite is absent. */
function requireKernelTest(): void {
  const res = python(['-c', 'import jupyter_kernel_test, jupyter_client']);
  assert.equal(
    res.status,
    0,
    `${PYTHON} cannot import jupyter_kernel_test: install Debian's ${DEBIAN} ` +
      `(apt-get install ${DEBIAN})\n${res.stderr.trim().split('\n').at(-1)}`,
  );
}

type Summary = { ran: number; failures: number; errors: number; skipped: number; failed: string[] };

/** unittest's verbose report (stderr) -> counts and the names of failing tests. */
function summarise(report: string): Summary {
  const ran = Number(/^Ran (\d+) tests?/m.exec(report)?.[1] ?? Number.NaN);
  const count = (key: string) => Number(new RegExp(`${key}=(\\d+)`).exec(report)?.[1] ?? 0);
  const failed = [...report.matchAll(/^(?:FAIL|ERROR): (test_\w+)/gm)].map((m) => m[1]);
  return {
    ran,
    failures: count('failures'),
    errors: count('errors'),
    skipped: count('skipped'),
    failed: [...new Set(failed)].sort(),
  };
}

function runSuite(kernel: string, jupyterPath = JUPYTER): { summary: Summary; report: string } {
  const res = python([path.join(__dirname, 'kernel_protocol.py'), '-v'], {
    jupyterPath,
    env: { LAB_KERNEL: kernel },
  });
  assert.notEqual(res.status, 3, res.stderr); // 3: jupyter_kernel_test missing
  const report = res.stderr;
  assert.match(report, /^Ran \d+ tests?/m, `no unittest summary:\n${report.slice(-3000)}`);
  return { summary: summarise(report), report };
}

function probe(requests: object[]): Exchange[] {
  const res = python([path.join(__dirname, 'kernel_probe.py'), 'tslab'], {
    input: JSON.stringify(requests),
  });
  assert.equal(res.status, 0, res.stderr.slice(-3000));
  return JSON.parse(res.stdout);
}

test('tslab is the version jupyter/kernel.js wraps (1.0.22)', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(TSLAB, 'package.json'), 'utf8'));
  assert.equal(
    version,
    '1.0.22',
    'jupyter/kernel.js subclasses tslab 1.0.22 internals: re-check it (and patches/) after a bump',
  );
  const spec = JSON.parse(fs.readFileSync(path.join(JUPYTER, 'kernels/tslab/kernel.json'), 'utf8'));
  assert.deepEqual(spec.argv.slice(1), ['{resource_dir}/../../kernel.js', '{connection_file}']);
});

test('jupyter_kernel_test: the lab kernel passes all 12 tests', () => {
  requireKernelTest();
  const { summary, report } = runSuite('tslab');
  // clear_output, pager and the three history sub-tests skip: tslab has none of them.
  assert.deepEqual(
    summary,
    { ran: 12, failures: 0, errors: 0, skipped: 5, failed: [] },
    report.slice(-6000),
  );
});

test('jupyter_kernel_test: tslab as shipped fails the four tests the wrapper fixes', () => {
  requireKernelTest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-kernel-'));
  try {
    const spec = path.join(dir, 'kernels', 'tslab-stock');
    fs.mkdirSync(spec, { recursive: true });
    const argv = [process.execPath, path.join(TSLAB, 'bin', 'tslab'), 'kernel'];
    fs.writeFileSync(
      path.join(spec, 'kernel.json'),
      JSON.stringify({
        argv: [...argv, '--config-path', '{connection_file}'],
        display_name: 'tslab as shipped',
        language: 'typescript',
      }),
    );
    const { summary, report } = runSuite('tslab-stock', dir);
    assert.deepEqual(
      summary.failed,
      ['test_error', 'test_execute_result', 'test_is_complete', 'test_kernel_info'],
      report.slice(-6000),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('each protocol fix, message by message', async (t) => {
  requireKernelTest();
  const cells = {
    sum: '1 + 2',
    printThenValue: "console.log('x');\n'y'",
    object: "const o = { a: 1, b: 'two' };\no",
    undef: 'undefined',
    statement: 'let z = 5;',
    silent: '6 * 7',
    thrown: "throw new TypeError('boom');",
    after: "'still running'",
    typeError: "const q: number = 'a';",
    rejected: "await Promise.reject(new RangeError('later'));",
    string: "throw 'plain';",
    writer:
      'Object.keys(require.cache).some((k) => /tslab[\\\\/]dist[\\\\/]jupyter\\.js$/.test(k) ' +
      "&& typeof require.cache[k].exports.lastWriteDisplayData === 'function')",
  };
  const isComplete = {
    'const = ;': 'invalid',
    '1 +* 2': 'invalid',
    'let 1x = 2;': 'invalid',
    'function f() {': 'incomplete',
    '1 + 2': 'complete',
    'await Promise.resolve(1)': 'complete',
    'const = ;\n\n': 'complete', // two blank lines force a cell through, as in tslab
  };
  const requests = [
    { type: 'kernel_info' },
    ...Object.entries(cells).map(([name, code]) => ({
      type: 'execute',
      code,
      silent: name === 'silent',
    })),
    ...Object.keys(isComplete).map((code) => ({ type: 'is_complete', code })),
    { type: 'comm_info' },
  ];
  const got = probe(requests);
  const info = got[0];
  const names = Object.keys(cells);
  const run = (name: keyof typeof cells) => got[1 + names.indexOf(name)];
  const completeness = got.slice(
    1 + names.length,
    1 + names.length + Object.keys(isComplete).length,
  );
  const commInfo = got.at(-1)!;
  const types = (e: Exchange) => e.outputs.map((m) => m.msg_type);

  await t.test('execute_result carries the last value, and nothing else prints it', () => {
    const sum = run('sum');
    assert.equal(sum.reply.content.status, 'ok');
    assert.deepEqual(sum.outputs, [
      {
        msg_type: 'execute_result',
        content: {
          execution_count: sum.reply.content.execution_count,
          data: { 'text/plain': '3' },
          metadata: {},
        },
      },
    ]);
    const pv = run('printThenValue');
    assert.deepEqual(types(pv), ['stream', 'execute_result']);
    assert.deepEqual(pv.outputs[0].content, { name: 'stdout', text: 'x\n' });
    assert.equal(
      pv.outputs[1].content.data['text/plain'],
      'y',
      'strings as console.log shows them',
    );
    assert.equal(run('object').outputs[0].content.data['text/plain'], "{ a: 1, b: 'two' }");
    assert.deepEqual(types(run('undef')), [], 'undefined shows nothing, as before');
    assert.deepEqual(types(run('statement')), []);
    assert.deepEqual(types(run('silent')), [], 'silent execution publishes no result');
  });

  await t.test('a failing cell: one error message, and ename/evalue/traceback in the reply', () => {
    const thrown = run('thrown');
    assert.equal(thrown.reply.content.status, 'error');
    assert.equal(thrown.reply.content.ename, 'TypeError');
    assert.equal(thrown.reply.content.evalue, 'boom');
    assert.ok(thrown.reply.content.traceback.includes('TypeError: boom'));
    assert.deepEqual(types(thrown), ['error'], 'the error is not also printed to stderr');
    const { status, execution_count, ...error } = thrown.reply.content;
    assert.deepEqual(thrown.outputs[0].content, error);
    assert.equal(run('after').outputs[0].content.data['text/plain'], 'still running');

    const typeError = run('typeError').reply.content;
    assert.equal(typeError.ename, 'CompileError');
    assert.match(typeError.evalue, /^1:7 - Type 'string' is not assignable to type 'number'\.$/);
    assert.deepEqual(types(run('typeError')), ['error']);

    const rejected = run('rejected').reply.content;
    assert.deepEqual([rejected.ename, rejected.evalue], ['RangeError', 'later']);
    const str = run('string').reply.content;
    assert.deepEqual(
      [str.ename, str.evalue, str.traceback],
      ['Uncaught', "'plain'", ["Uncaught 'plain'"]],
    );
  });

  await t.test('kernel_info_reply has status ok', () => {
    assert.equal(info.reply.msg_type, 'kernel_info_reply');
    assert.equal(info.reply.content.status, 'ok');
    assert.equal(info.reply.content.language_info.name, 'typescript');
  });

  await t.test('is_complete: invalid for code the parser rejects', () => {
    const statuses = completeness.map((e) => e.reply.content.status);
    assert.deepEqual(statuses, Object.values(isComplete));
    assert.equal(completeness[3].reply.content.indent, '  ');
  });

  await t.test('comm_info_request gets a comm_info_reply', () => {
    assert.equal(commInfo.reply.msg_type, 'comm_info_reply');
    assert.deepEqual(commInfo.reply.content, { status: 'ok', comms: {} });
  });

  await t.test("lib's display bundles still find tslab's cell writer", () => {
    assert.equal(run('writer').outputs[0].content.data['text/plain'], 'true');
  });
});

test("an internal kernel error keeps tslab's stderr line (the notebook runner retries on it)", () => {
  // Run in a child: tslab's handler points process.stdout/stderr at the cell's writer.
  const script = `
    const { LabHandler } = require(${JSON.stringify(path.join(JUPYTER, 'kernel.js'))});
    const write = process.stdout.write.bind(process.stdout);
    const executor = { execute: async () => { throw new Error('Unexpected pending rebuildTimer'); } };
    const handler = new LabHandler(executor, false, { run: null });
    const seen = { streams: [], published: [] };
    handler
      .handleExecute({ code: 'x' }, (name, text) => seen.streams.push([name, text]), () => {},
        (type, content) => seen.published.push([type, content]))
      .then((reply) => write(JSON.stringify({ reply, ...seen })));`;
  const res = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  const { reply, streams, published } = JSON.parse(res.stdout);
  assert.equal(reply.status, 'error');
  assert.equal(reply.ename, 'Error');
  assert.equal(reply.evalue, 'Unexpected pending rebuildTimer');
  assert.equal(streams.length, 1);
  assert.equal(streams[0][0], 'stderr');
  assert.match(streams[0][1], /^unexpected error: Error: Unexpected pending rebuildTimer/);
  assert.deepEqual(
    published.map((p: [string, object]) => p[0]),
    ['error'],
  );
});
