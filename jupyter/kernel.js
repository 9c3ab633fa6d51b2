#!/usr/bin/env node
/**
 * The lab's notebook kernel: tslab 1.0.22's own kernel (same compiler, executor, display
 * API and ZeroMQ server), with its Jupyter protocol gaps closed. Started by the kernelspec
 * jupyter/kernels/tslab/kernel.json as `node jupyter/kernel.js <connection file>`.
 *
 * What differs from `tslab kernel` (see environment.md, "Notebook kernel"):
 *  1. a cell ending in an expression sends `execute_result` (Out[n], text/plain formatted
 *     exactly as tslab printed it) instead of printing the value to stdout;
 *  2. a failing cell sends one `error` message and an `execute_reply` carrying `ename`,
 *     `evalue` and `traceback` (runtime errors: the error's name, message and inspected
 *     stack; type errors: `CompileError` and tslab's diagnostic lines) instead of printing
 *     the error to stderr;
 *  3. `kernel_info_reply` carries `status: 'ok'`;
 *  4. `is_complete_request` answers `invalid` for code the TypeScript parser rejects;
 *  5. `comm_info_request` is answered with a `comm_info_reply` (tslab sent `complete_reply`).
 * Everything else is tslab's code, reached through its exported classes; the subclasses
 * below override only the methods involved. patches/tslab-1.0.22-jupyter-protocol.patch is
 * the same change against tslab's TypeScript sources, offered upstream.
 */

const path = require('node:path');
const util = require('node:util');

const TSLAB_VERSION = '1.0.22';
const tslabDir = path.dirname(require.resolve('tslab/package.json'));
const fromTslab = (id) => require(require.resolve(id, { paths: [tslabDir] }));

const { version } = fromTslab('tslab/package.json');
const jupyter = fromTslab('tslab/dist/jupyter');
const { createExecutor } = fromTslab('tslab/dist/executor');
const { createConverter } = fromTslab('tslab/dist/converter');
const ts = fromTslab('@tslab/typescript-for-tslab');

for (const [name, value] of Object.entries({
  'dist/jupyter JupyterHandlerImpl': jupyter.JupyterHandlerImpl,
  'dist/jupyter ZmqServer': jupyter.ZmqServer,
  'dist/executor createExecutor': createExecutor,
  'dist/converter createConverter': createConverter,
})) {
  if (typeof value !== 'function') {
    throw new Error(
      `jupyter/kernel.js: tslab ${version} has no ${name}; this wrapper was written for ` +
        `tslab ${TSLAB_VERSION} (see environment.md, "Notebook kernel")`,
    );
  }
}
if (version !== TSLAB_VERSION) {
  console.error(`[lab kernel] written for tslab ${TSLAB_VERSION}, running on ${version}`);
}

/** The executor prints a cell's diagnostics with this format (tslab's printDiagnostics). */
const DIAGNOSTIC_FORMAT = '%s%d:%d - %s';

/**
 * The outputs tslab's executor makes through the `console` it is given: the value of a
 * cell's last expression (`log`), a thrown error or compiler diagnostics (`error`). While
 * a cell runs they are collected in `run`; outside a cell they print as tslab would.
 */
class CellSink {
  constructor() {
    this.run = null;
    this.console = {
      log: (...args) => (this.run ? this.run.values.push(args) : console.log(...args)),
      error: (...args) => (this.run ? this.run.errors.push(args) : console.error(...args)),
    };
  }
}

/** `{ ename, evalue, traceback }` for what the executor reported through console.error. */
function describeFailure(errors) {
  if (errors.length === 1 && errors[0].length === 1) return describeThrown(errors[0][0]);
  if (errors.length === 0) return { ename: 'Error', evalue: 'execution failed', traceback: [] };
  const lines = errors.map((args) => util.format(...args));
  const compile = errors.every((args) => args[0] === DIAGNOSTIC_FORMAT);
  // evalue is a one-line summary (front ends print "ename: evalue" after the traceback).
  const more = lines.length > 1 ? ` (and ${lines.length - 1} more)` : '';
  return { ename: compile ? 'CompileError' : 'Error', evalue: lines[0] + more, traceback: lines };
}

/** An error (its name, message and util.inspect text) or any other thrown value. */
function describeThrown(e) {
  const text = util.format(e);
  if (e !== null && typeof e === 'object' && typeof e.message === 'string') {
    const ename = typeof e.name === 'string' && e.name ? e.name : 'Error';
    return { ename, evalue: e.message, traceback: text.split('\n') };
  }
  return { ename: 'Uncaught', evalue: util.inspect(e), traceback: [`Uncaught ${util.inspect(e)}`] };
}

/** tslab's isCompleteCode treats code ending in two blank lines as complete, unparsed. */
const FORCED_COMPLETE = /(^|\n)\s*\n\s*$/;

/** True when the parse tslab's isCompleteCode makes of `code` reports a syntax error. */
function hasSyntaxError(code) {
  const src = ts.createSourceFile(
    'tmp.ts',
    code,
    ts.ScriptTarget.Latest,
    undefined,
    ts.ScriptKind.TSX,
  );
  return (src.parseDiagnostics ?? []).length > 0;
}

class LabHandler extends jupyter.JupyterHandlerImpl {
  constructor(executor, isJs, sink) {
    super(executor, isJs);
    this.sink = sink;
    /** execute_request content -> its run (outputs, publisher), while it is queued or runs. */
    this.runs = new Map();
  }

  handleKernel() {
    return { status: 'ok', ...super.handleKernel() };
  }

  /**
   * tslab answers `incomplete` (+ indent) when the parser wants more at the end of the
   * code, else `complete`; a complete answer for code with a syntax error becomes
   * `invalid` (unless the user forced it with two blank lines, as tslab allows).
   */
  handleIsComplete(req) {
    const res = super.handleIsComplete(req);
    if (res.status !== 'complete' || FORCED_COMPLETE.test(req.code)) return res;
    return hasSyntaxError(req.code) ? { status: 'invalid' } : res;
  }

  /** tslab's handleExecute plus `publish(msgType, content)` for execute_result and error. */
  async handleExecute(req, writeStream, writeDisplayData, publish = () => {}) {
    const run = { values: [], errors: [], unexpected: null, publish };
    this.runs.set(req, run);
    let reply;
    try {
      reply = await super.handleExecute(req, writeStream, writeDisplayData);
    } finally {
      this.runs.delete(req);
    }
    if (reply.status !== 'error') return reply;
    // tslab already wrote "unexpected error: ..." to the cell's stderr for internal errors
    // (the notebook runner looks for them there); cell errors reach no stream any more.
    const error = run.unexpected ? describeThrown(run.unexpected) : describeFailure(run.errors);
    publish('error', error);
    return { ...reply, ...error };
  }

  async handleExecuteImpl(req, writeStream, writeDisplayData) {
    const run = this.runs.get(req) ?? { values: [], errors: [], unexpected: null, publish() {} };
    this.sink.run = run;
    let count;
    try {
      count = await super.handleExecuteImpl(req, writeStream, writeDisplayData);
    } catch (e) {
      // A failed cell throws tslab's ExecutionCount; anything else is an internal error.
      if (!(e !== null && typeof e === 'object' && typeof e.count === 'number')) run.unexpected = e;
      throw e;
    } finally {
      this.sink.run = null;
    }
    // Diagnostics of a successful cell (tslab's `//@module` cells) stay on stderr.
    for (const args of run.errors) console.error(...args);
    const last = run.values.at(-1);
    if (last && !req.silent) {
      run.publish('execute_result', {
        execution_count: count.count,
        data: { 'text/plain': util.format(...last) },
        metadata: {},
      });
    }
    return count;
  }
}

class LabServer extends jupyter.ZmqServer {
  /** tslab's ZmqServer.handleExecute, also handing the handler an iopub publisher. */
  async handleExecute(sock, msg) {
    const send = (msgType, content) => {
      const out = msg.createReply();
      out.header.msg_type = msgType;
      out.content = content;
      out.signAndSend(this.connInfo.key, this.iopub);
    };
    const writeStream = (name, text) => send('stream', { name, text });
    const writeDisplayData = (data, update) =>
      send(update ? 'update_display_data' : 'display_data', data);
    const reply = msg.createReply();
    reply.header.msg_type = 'execute_reply';
    reply.content = await this.handler.handleExecute(
      msg.content,
      writeStream,
      writeDisplayData,
      send,
    );
    reply.signAndSend(this.connInfo.key, sock);
  }

  handleCommInfoRequest(sock, msg) {
    const reply = msg.createReply();
    reply.header.msg_type = 'comm_info_reply';
    reply.content = { status: 'ok', comms: {} };
    reply.signAndSend(this.connInfo.key, sock);
  }
}

/** tslab's ConverterSetImpl (not exported): converters made on first use. */
class Converters {
  constructor(isJS) {
    this.isJS = isJS;
  }
  get node() {
    this._node ??= createConverter({ isJS: this.isJS, isBrowser: false });
    return this._node;
  }
  get browser() {
    this._browser ??= createConverter({ isJS: this.isJS, isBrowser: true });
    return this._browser;
  }
  close() {
    this._node?.close();
    this._browser?.close();
  }
}

/** tslab's startKernel (dist/main.js) with the classes above. */
function startKernel(configPath) {
  const isJs = false;
  const convs = new Converters(isJs);
  convs.node; // warm the Node.js converter, as tslab does
  const sink = new CellSink();
  const executor = createExecutor(process.cwd(), convs, sink.console);
  const server = new LabServer(new LabHandler(executor, isJs, sink), configPath);
  process.on('SIGINT', () => executor.interrupt());
  process.on('uncaughtException', (err) => console.error('UncaughtException:', err));
  process.on('unhandledRejection', (reason) => console.error('UnhandledPromiseRejection:', reason));
  server.init();
}

if (require.main === module) {
  const configPath = process.argv[2];
  if (!configPath) {
    console.error('usage: node jupyter/kernel.js <connection file>');
    process.exit(2);
  }
  startKernel(configPath);
}

module.exports = { startKernel, LabHandler, LabServer, describeFailure, hasSyntaxError };
