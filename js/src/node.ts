// deskml for Node and Electron main processes: everything in the browser entry, plus
// - `connect()`: a DeskmlClient with `ws` as its WebSocket and the token found for you,
// - `spawnServer()`: starts `deskml serve --port 0`, reads its ready line, returns a client,
// - `Sidecar`: `deskml serve --stdio`, JSON-RPC 2.0 over the child's stdin and stdout.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import WebSocket from 'ws';

import { type ClientOptions, type ModelMetadata, type RepositoryEntry, type ServerMetadata, DeskmlClient } from './client.js';
import { DeskmlError } from './errors.js';
import { type InferOptions, type InferResult, buildInferBody, decodeInferResponse } from './protocol.js';
import { type Tensor, parseResponseJson, stringifyRequest } from './tensor.js';
import type { WebSocketConstructor } from './stream.js';

export * from './index.js';

/** Where to look for the token, in this order: `token`, the file `tokenFile`, `$DESKML_TOKEN`. */
export interface TokenSource {
  token?: string;
  /** A file holding the token, such as the ready line's `token_file`. */
  tokenFile?: string;
  /** Environment to read DESKML_TOKEN from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The token from `token`, else the file `tokenFile` (trimmed), else `$DESKML_TOKEN`; undefined if none. */
export function readToken(source: TokenSource = {}): string | undefined {
  if (source.token) return source.token;
  if (source.tokenFile) {
    let text: string;
    try {
      text = readFileSync(source.tokenFile, 'utf8');
    } catch (e) {
      throw new DeskmlError(`cannot read the token file ${source.tokenFile}: ${(e as Error).message}`, { cause: e });
    }
    const t = text.trim();
    if (!t) throw new DeskmlError(`the token file ${source.tokenFile} is empty`);
    return t;
  }
  const env = source.env ?? process.env;
  return env.DESKML_TOKEN || undefined;
}

/** A client for a running `deskml serve`, with `ws` for WebSocket streaming; the token comes from `readToken`. */
export function connect(options: ClientOptions & TokenSource): DeskmlClient {
  const { tokenFile, env, ...rest } = options;
  const token = readToken({ ...(rest.token ? { token: rest.token } : {}), ...(tokenFile ? { tokenFile } : {}), ...(env ? { env } : {}) });
  return new DeskmlClient({
    ...rest,
    ...(token ? { token } : {}),
    WebSocket: rest.WebSocket ?? (WebSocket as unknown as WebSocketConstructor),
  });
}

/** The line `deskml serve` prints on stdout once it listens. */
export interface ReadyLine {
  host: string;
  port: number;
  token: string;
  token_file: string | null;
  unix?: string;
}

export interface SpawnOptions {
  /** The deskml executable (default `$DESKML_BINARY`, else `deskml` on PATH). */
  binary?: string;
  /** The model repository folder (DIR/<name>/<version>/model.onnx). */
  models: string;
  /** More arguments for `deskml serve` (`--threads 2`, `--token T`, ...). */
  args?: string[];
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Called with each line deskml writes on stderr (its JSON logs); by default the last lines are
   *  kept for error messages and otherwise dropped. */
  onStderr?: (line: string) => void;
}

export interface ServerOptions extends SpawnOptions {
  /** How long to wait for the ready line, in milliseconds (default 30000). */
  startTimeoutMs?: number;
  /** Passed to the client (default timeout per call, extra headers...). */
  client?: Omit<ClientOptions, 'url' | 'token'>;
}

/** A `deskml serve` started by `spawnServer`. */
export interface ServerProcess {
  readonly url: string;
  readonly ready: ReadyLine;
  readonly token: string;
  readonly client: DeskmlClient;
  readonly process: ChildProcess;
  /** SIGTERM, then wait for the exit (SIGKILL after `timeoutMs`, default 15000); the exit code. */
  close(timeoutMs?: number): Promise<number | null>;
}

function binaryOf(options: SpawnOptions): string {
  return options.binary ?? process.env.DESKML_BINARY ?? 'deskml';
}

/** Keeps the last lines of a stream and forwards each line. */
class LineTail {
  readonly lines: string[] = [];
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  constructor(private readonly onLine?: (line: string) => void, private readonly keep = 20) {}
  push(chunk: Buffer): void {
    this.partial += this.decoder.write(chunk);
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      this.lines.push(line);
      if (this.lines.length > this.keep) this.lines.shift();
      this.onLine?.(line);
    }
  }
  text(): string {
    return [...this.lines, this.partial].filter((l) => l).join('\n');
  }
}

function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: child.exitCode, signal: child.signalCode }));
  });
}

async function stopChild(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  const exited = waitExit(child);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((r) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      r();
    }, timeoutMs);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  return (await exited).code;
}

/**
 * Starts `deskml serve --models DIR --port 0`, waits for its ready line and returns a connected
 * client. The token is the ready line's, else read from its `token_file`.
 */
export function spawnServer(options: ServerOptions): Promise<ServerProcess> {
  const args = ['serve', '--models', options.models, '--port', '0', ...(options.args ?? [])];
  const child = spawn(binaryOf(options), args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = new LineTail(options.onStderr);
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  const timeoutMs = options.startTimeoutMs ?? 30000;
  return new Promise<ServerProcess>((resolve, reject) => {
    let out = '';
    let settled = false;
    const fail = (why: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      const tail = stderr.text();
      reject(new DeskmlError(`deskml serve ${why}${tail ? `; stderr:\n${tail}` : ''}`, { cause }));
    };
    const timer = setTimeout(() => fail(`printed no ready line within ${timeoutMs} ms`), timeoutMs);
    child.once('error', (e) => fail(`could not start (${binaryOf(options)}): ${e.message}`, e));
    child.once('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal}) before it was ready`));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (settled) return;
      out += chunk.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      let ready: ReadyLine;
      try {
        ready = JSON.parse(out.slice(0, nl)) as ReadyLine;
      } catch (e) {
        fail(`printed a ready line that is not JSON: ${out.slice(0, nl)}`, e);
        return;
      }
      settled = true;
      clearTimeout(timer);
      child.stdout!.resume(); // nothing else comes on stdout; keep the pipe drained
      let token: string;
      try {
        token = ready.token || readToken({ ...(ready.token_file ? { tokenFile: ready.token_file } : {}) }) || '';
      } catch (e) {
        child.kill('SIGKILL');
        reject(e);
        return;
      }
      const host = ready.host.includes(':') ? `[${ready.host}]` : ready.host;
      const url = `http://${host}:${ready.port}`;
      const client = connect({ ...(options.client ?? {}), url, token });
      resolve({
        url,
        ready,
        token,
        client,
        process: child,
        close: (t = 15000) => stopChild(child, t),
      });
    });
  });
}

// ---- the stdio sidecar ---------------------------------------------------------------------

/** JSON-RPC error codes of `deskml serve --stdio` (docs/SERVER.md). */
export const RpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ServerError: -32000,
  NotFound: -32001,
  Unavailable: -32002,
  DeadlineExceeded: -32003,
  Cancelled: -32004,
} as const;

export interface SidecarOptions extends SpawnOptions {}

export interface SidecarCallOptions {
  /** Stop waiting for the answer (the request still runs in deskml; its answer is dropped). */
  signal?: AbortSignal;
  timeoutMs?: number;
}

interface RpcPending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: DeskmlError) => void;
  cleanup: () => void;
}

const encodeBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const decodeBase64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/**
 * `deskml serve --stdio` as a child process: JSON-RPC 2.0, one message per line, answers matched by
 * id (they come in completion order). No port and no token: only this process holds the pipes.
 * When the child exits, every call still waiting is rejected with a DeskmlError saying so; when this
 * process dies, deskml sees end of input, answers what it has and exits.
 */
export class Sidecar {
  readonly process: ChildProcess;
  /** Resolves when the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly pending = new Map<number, RpcPending>();
  private nextId = 1;
  private readonly stderr: LineTail;
  private stdoutBuf = '';
  private readonly decoder = new StringDecoder('utf8');
  private exitError: DeskmlError | undefined;

  private constructor(options: SidecarOptions) {
    const args = ['serve', '--models', options.models, '--stdio', ...(options.args ?? [])];
    this.process = spawn(binaryOf(options), args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = new LineTail(options.onStderr);
    this.process.stderr!.on('data', (c: Buffer) => this.stderr.push(c));
    this.process.stdout!.on('data', (c: Buffer) => this.onStdout(c));
    this.process.stdin!.on('error', () => undefined); // EPIPE after the child died; handled on exit
    this.process.once('error', (e) => this.fail(new DeskmlError(`deskml sidecar could not start: ${e.message}`, { cause: e })));
    this.exited = waitExit(this.process);
    this.process.once('exit', (code, signal) => {
      const tail = this.stderr.text();
      this.fail(
        new DeskmlError(
          `the deskml sidecar exited (code ${code}, signal ${signal}) before answering` +
            (tail ? `; its last stderr lines:\n${tail}` : ''),
        ),
      );
    });
  }

  /** Spawns `deskml serve --models DIR --stdio`. Start-up failures reject the first calls. */
  static spawn(options: SidecarOptions): Sidecar {
    return new Sidecar(options);
  }

  /** Sends one JSON-RPC request and resolves with its `result` (rejects with DeskmlError: `code`,
   *  `statusName`, `retryAfter` from the error's data). */
  call<T = unknown>(method: string, params?: Record<string, unknown>, options: SidecarCallOptions = {}): Promise<T> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const signal = options.signal;
      const onAbort = () => this.settle(id, undefined, new DeskmlError(`${method}: aborted`, { cause: signal?.reason }));
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, cleanup });
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => this.settle(id, undefined, new DeskmlError(`${method}: timed out after ${ms} ms`)), ms);
      }
      const msg: Record<string, unknown> = { jsonrpc: '2.0', id, method };
      if (params !== undefined) msg.params = params;
      this.process.stdin!.write(stringifyRequest(msg) + '\n');
    });
  }

  /** A JSON-RPC notification: runs in deskml, never answered. */
  notify(method: string, params?: Record<string, unknown>): void {
    if (this.exitError) throw this.exitError;
    const msg: Record<string, unknown> = { jsonrpc: '2.0', method };
    if (params !== undefined) msg.params = params;
    this.process.stdin!.write(stringifyRequest(msg) + '\n');
  }

  health(options?: SidecarCallOptions): Promise<{ live: boolean; ready: boolean }> {
    return this.call('health', undefined, options);
  }

  serverMetadata(options?: SidecarCallOptions): Promise<ServerMetadata> {
    return this.call('server_metadata', undefined, options);
  }

  modelMetadata(model: string, options: SidecarCallOptions & { version?: string | number } = {}): Promise<ModelMetadata> {
    return this.call('model_metadata', modelParams(model, options.version), options);
  }

  /** Whether the model is loaded (`model_ready`'s `ready`). */
  async modelReady(model: string, options: SidecarCallOptions & { version?: string | number } = {}): Promise<boolean> {
    const r = await this.call<{ ready?: boolean }>('model_ready', modelParams(model, options.version), options);
    return r.ready === true;
  }

  /** Runs the model: `binary` (default true) sends and receives base64 tensors, else JSON `data`;
   *  the outputs are typed tensors either way. */
  async infer(model: string, inputs: Tensor[], options: InferOptions = {}): Promise<InferResult> {
    const binary = options.binary ?? true;
    const { body } = buildInferBody(inputs, options, binary ? 'base64' : 'json', encodeBase64);
    const params: Record<string, unknown> = { ...body, ...modelParams(model, options.version) };
    const callOptions: SidecarCallOptions = {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    };
    const result = await this.call('infer', params, callOptions);
    return decodeInferResponse(result, undefined, decodeBase64);
  }

  repositoryIndex(options: SidecarCallOptions & { ready?: boolean } = {}): Promise<RepositoryEntry[]> {
    return this.call('repository_index', options.ready !== undefined ? { ready: options.ready } : {}, options);
  }

  async load(model: string, options: SidecarCallOptions & { version?: string | number } = {}): Promise<void> {
    await this.call('load', modelParams(model, options.version), options);
  }

  async unload(model: string, options: SidecarCallOptions & { version?: string | number } = {}): Promise<void> {
    await this.call('unload', modelParams(model, options.version), options);
  }

  stats(model: string, options: SidecarCallOptions & { version?: string | number } = {}): Promise<{ model_stats: Record<string, unknown>[] }> {
    return this.call('stats', modelParams(model, options.version), options);
  }

  metrics(options?: SidecarCallOptions): Promise<string> {
    return this.call('metrics', undefined, options);
  }

  /** The number of calls waiting for their answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Closes stdin: deskml answers what it has read (cancelling what still runs after its 10 s drain)
   * and exits 0. After `timeoutMs` (default 15000) it is killed. Resolves with the exit code.
   */
  async close(timeoutMs = 15000): Promise<number | null> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return this.process.exitCode;
    this.process.stdin!.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((r) => {
      timer = setTimeout(() => {
        this.process.kill('SIGKILL');
        r();
      }, timeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return (await this.exited).code;
  }

  private onStdout(chunk: Buffer): void {
    this.stdoutBuf += this.decoder.write(chunk);
    let nl: number;
    while ((nl = this.stdoutBuf.indexOf('\n')) >= 0) {
      const line = this.stdoutBuf.slice(0, nl).trim();
      this.stdoutBuf = this.stdoutBuf.slice(nl + 1);
      if (!line) continue;
      let msg: { id?: unknown; result?: unknown; error?: { code?: number; message?: string; data?: Record<string, unknown> } };
      try {
        msg = JSON.parse(line);
        // Exact 64-bit integers in JSON infer results (see parseResponseJson).
        if (typeof msg.id === 'number' && this.pending.get(msg.id)?.method === 'infer' && /\d{16}/.test(line)) {
          msg = parseResponseJson(line) as typeof msg;
        }
      } catch {
        continue;
      }
      if (typeof msg.id !== 'number') continue; // id null: an answer to a line deskml could not parse
      if (msg.error) {
        const data = msg.error.data ?? {};
        const retry = data.retry_after;
        this.settle(
          msg.id,
          undefined,
          new DeskmlError(`${this.pending.get(msg.id)?.method ?? 'call'}: ${msg.error.message ?? 'error'}`, {
            ...(typeof msg.error.code === 'number' ? { code: msg.error.code } : {}),
            ...(typeof data.status === 'string' ? { statusName: data.status } : {}),
            ...(typeof retry === 'number' ? { retryAfter: retry } : {}),
            body: msg.error,
          }),
        );
      } else {
        this.settle(msg.id, msg.result);
      }
    }
  }

  private settle(id: number, result: unknown, error?: DeskmlError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    if (error) p.reject(error);
    else p.resolve(result);
  }

  private fail(err: DeskmlError): void {
    if (this.exitError) return;
    this.exitError = err;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.cleanup();
      p.reject(new DeskmlError(`${p.method}: ${err.message}`, { cause: err.cause }));
    }
  }
}

function modelParams(model: string, version?: string | number): Record<string, unknown> {
  if (typeof model !== 'string' || model.length === 0) throw new DeskmlError('a model name is needed');
  return version === undefined ? { model } : { model, version: String(version) };
}
