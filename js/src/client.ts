// The HTTP client: KServe v2 over fetch (JSON and the binary tensor extension), NDJSON streaming,
// and the WebSocket stream. Browser-safe: fetch, TextDecoder, WebSocket only.

import { DeskmlError, parseRetryAfter } from './errors.js';
import { type InferOptions, type InferResult, buildInferBody, decodeInferResponse } from './protocol.js';
import { type Tensor, parseResponseJson, stringifyRequest } from './tensor.js';
import { InferenceStream, type WebSocketConstructor, openWebSocket } from './stream.js';

export interface ClientOptions {
  /** Base URL of `deskml serve`, e.g. `http://127.0.0.1:41469`. */
  url: string;
  /** The bearer token (the ready line's `token`); omit against `--open-inference`. */
  token?: string;
  /** Default client-side limit for each call, in milliseconds (none by default). */
  timeoutMs?: number;
  /** fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** WebSocket implementation for `stream()` (default: globalThis.WebSocket; `deskml/node` passes `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** Per-call options of the non-inference calls. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ModelOptions extends CallOptions {
  version?: string | number;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 for a dynamic dimension. */
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  parameters?: Record<string, unknown>;
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface RepositoryEntry {
  name: string;
  version: string;
  state: string;
  reason: string;
}

/** One item of an NDJSON `infer_stream` request. Tensors travel as JSON. */
export interface StreamItem {
  inputs: Tensor[];
  id?: string;
  outputs?: string[];
  priority?: number;
  timeoutUs?: number;
  parameters?: Record<string, unknown>;
}

/** One answer of a stream, in completion order: `result` or `error`. */
export interface StreamAnswer {
  /** The item's position in the request (NDJSON). */
  index: number;
  id?: string;
  result?: InferResult;
  error?: DeskmlError;
  progress: { done: number; total: number };
}

/** The summary line that ends an NDJSON stream. */
export interface StreamSummary {
  total: number;
  failed: number;
}

interface RequestInit2 extends CallOptions {
  method?: string;
  body?: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
}

/** A call in flight: its signal, and `done()` to clear the timer once the body has been read. */
class CallScope {
  readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort: () => void;

  constructor(
    private readonly outer: AbortSignal | undefined,
    readonly timeoutMs: number | undefined,
  ) {
    this.onAbort = () => this.controller.abort(outer?.reason);
    if (outer?.aborted) this.controller.abort(outer.reason);
    else outer?.addEventListener('abort', this.onAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.timer = setTimeout(
        () => this.controller.abort(new DeskmlError(`timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The error to throw when `e` happened because the call was aborted or timed out. */
  wrap(e: unknown, what: string): DeskmlError {
    if (e instanceof DeskmlError) return e;
    if (this.controller.signal.aborted) {
      const reason: unknown = this.controller.signal.reason;
      if (reason instanceof DeskmlError) return new DeskmlError(`${what}: ${reason.message}`, { cause: e });
      return new DeskmlError(`${what}: aborted`, { cause: reason ?? e });
    }
    return new DeskmlError(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }

  done(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.outer?.removeEventListener('abort', this.onAbort);
  }
}

async function errorFromResponse(res: Response, what: string): Promise<DeskmlError> {
  let body: unknown;
  let message = `${res.status} ${res.statusText}`;
  try {
    const text = await res.text();
    try {
      body = JSON.parse(text);
      const e = (body as { error?: unknown }).error;
      if (typeof e === 'string') message = e;
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch {
    // the body could not be read; keep the status line
  }
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  return new DeskmlError(`${what}: ${message}`, {
    status: res.status,
    ...(retryAfter !== undefined ? { retryAfter } : {}),
    ...(body !== undefined ? { body } : {}),
  });
}

function modelPath(model: string, version?: string | number): string {
  if (typeof model !== 'string' || model.length === 0) throw new DeskmlError('a model name is needed');
  let p = `/v2/models/${encodeURIComponent(model)}`;
  if (version !== undefined) p += `/versions/${encodeURIComponent(String(version))}`;
  return p;
}

/**
 * A client for one `deskml serve`. Every method throws DeskmlError: an HTTP error answer carries
 * `status` (and `retryAfter` for a full queue), the message is the server's `{"error"}` text.
 */
export class DeskmlClient {
  readonly url: string;
  readonly token: string | undefined;
  private readonly timeoutMs: number | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly headers: Record<string, string>;

  constructor(options: ClientOptions) {
    if (!options || typeof options.url !== 'string') throw new DeskmlError('DeskmlClient needs { url }');
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new DeskmlError('no fetch implementation');
    this.fetchImpl = f.bind(globalThis);
    this.WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? undefined;
    this.headers = { ...(options.headers ?? {}) };
  }

  private async fetchOk<T>(
    path: string,
    init: RequestInit2,
    what: string,
    read: (res: Response, scope: CallScope) => Promise<T>,
  ): Promise<T> {
    const scope = new CallScope(init.signal, init.timeoutMs ?? this.timeoutMs);
    try {
      const headers: Record<string, string> = { ...this.headers, ...(init.headers ?? {}) };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      let res: Response;
      try {
        res = await this.fetchImpl(this.url + path, {
          method: init.method ?? 'GET',
          headers,
          ...(init.body !== undefined ? { body: init.body } : {}),
          signal: scope.signal,
        });
      } catch (e) {
        throw scope.wrap(e, what);
      }
      if (!res.ok) throw await errorFromResponse(res, what);
      try {
        return await read(res, scope);
      } catch (e) {
        throw scope.wrap(e, what);
      }
    } finally {
      scope.done();
    }
  }

  private json<T>(path: string, init: RequestInit2, what: string): Promise<T> {
    return this.fetchOk(path, init, what, async (res) => (await res.json()) as T);
  }

  /** `GET /v2/health/live` (no token needed). */
  async live(options: CallOptions = {}): Promise<boolean> {
    const r = await this.json<{ live?: boolean }>('/v2/health/live', options, 'live');
    return r.live === true;
  }

  /** `GET /v2/health/ready`: false while the server shuts down (503). */
  async ready(options: CallOptions = {}): Promise<boolean> {
    try {
      const r = await this.json<{ ready?: boolean }>('/v2/health/ready', options, 'ready');
      return r.ready === true;
    } catch (e) {
      if (e instanceof DeskmlError && e.status === 503) return false;
      throw e;
    }
  }

  /** `GET /v2`: name, version and extensions. */
  serverMetadata(options: CallOptions = {}): Promise<ServerMetadata> {
    return this.json('/v2', options, 'server metadata');
  }

  /** `GET /v2/models/{m}[/versions/{v}]`: inputs and outputs (loads the model). */
  modelMetadata(model: string, options: ModelOptions = {}): Promise<ModelMetadata> {
    return this.json(modelPath(model, options.version), options, `metadata of '${model}'`);
  }

  /** `GET .../ready`: whether the model is loaded (false, not an error, when it is not). */
  async modelReady(model: string, options: ModelOptions = {}): Promise<boolean> {
    try {
      const r = await this.json<{ ready?: boolean }>(
        `${modelPath(model, options.version)}/ready`,
        options,
        `readiness of '${model}'`,
      );
      return r.ready === true;
    } catch (e) {
      if (e instanceof DeskmlError && e.status === 400 && (e.body as { ready?: unknown })?.ready === false) {
        return false;
      }
      throw e;
    }
  }

  /**
   * `POST .../infer`: runs the model on `inputs` (checked first: datatype, array kind, element count).
   * With `binary` (the default) tensors travel as raw bytes both ways; otherwise as JSON. Either way
   * the outputs come back as typed tensors.
   */
  async infer(model: string, inputs: Tensor[], options: InferOptions = {}): Promise<InferResult> {
    const binary = options.binary ?? true;
    const { body, parts } = buildInferBody(inputs, options, binary ? 'binary' : 'json');
    const what = `infer '${model}'`;
    const path = `${modelPath(model, options.version)}/infer`;
    const headerText = stringifyRequest(body);
    let payload: string | Uint8Array<ArrayBuffer> = headerText;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (binary) {
      const header = new TextEncoder().encode(headerText);
      const total = parts.reduce((n, p) => n + p.byteLength, header.byteLength);
      const buf = new Uint8Array(total);
      buf.set(header, 0);
      let off = header.byteLength;
      for (const p of parts) {
        buf.set(p, off);
        off += p.byteLength;
      }
      payload = buf;
      headers['content-type'] = 'application/octet-stream';
      headers['inference-header-content-length'] = String(header.byteLength);
    }
    return this.fetchOk(path, { ...options, method: 'POST', body: payload, headers }, what, async (res) => {
      const headerLength = res.headers.get('inference-header-content-length');
      if (headerLength === null) return decodeInferResponse(parseResponseJson(await res.text()));
      const n = Number(headerLength);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (!Number.isSafeInteger(n) || n < 0 || n > bytes.length) {
        throw new DeskmlError(`bad Inference-Header-Content-Length ${headerLength}`);
      }
      const json = parseResponseJson(new TextDecoder().decode(bytes.subarray(0, n)));
      return decodeInferResponse(json, bytes.subarray(n));
    });
  }

  /**
   * `POST .../infer_stream`: sends every item at once and yields each answer as it completes
   * (completion order; `index` is the item's position). A failed item is an answer with `error`;
   * the iteration ends after the server's summary line. Breaking out of the loop closes the
   * connection, which cancels the items still queued.
   */
  async *inferStream(
    model: string,
    items: StreamItem[],
    options: Omit<InferOptions, 'binary' | 'outputs' | 'id' | 'priority' | 'timeoutUs' | 'parameters'> = {},
  ): AsyncGenerator<StreamAnswer, StreamSummary, undefined> {
    if (!Array.isArray(items) || items.length === 0) throw new DeskmlError('inferStream needs at least one item');
    const wire = items.map((it) => buildInferBody(it.inputs, it, 'json').body);
    const what = `infer_stream '${model}'`;
    const path = `${modelPath(model, options.version)}/infer_stream`;
    const scope = new CallScope(options.signal, options.timeoutMs ?? this.timeoutMs);
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      const headers: Record<string, string> = { ...this.headers, 'content-type': 'application/json' };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      let res: Response;
      try {
        res = await this.fetchImpl(this.url + path, {
          method: 'POST',
          headers,
          body: stringifyRequest({ items: wire }),
          signal: scope.signal,
        });
      } catch (e) {
        throw scope.wrap(e, what);
      }
      if (!res.ok) throw await errorFromResponse(res, what);
      if (!res.body) throw new DeskmlError(`${what}: the answer has no body`);
      reader = res.body.getReader();
      const decoder = new TextDecoder();
      let pending = '';
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw scope.wrap(e, what);
        }
        if (chunk.done) break;
        pending += decoder.decode(chunk.value, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (!line) continue;
          const msg = parseResponseJson(line) as Record<string, unknown>;
          if (msg.done === true) {
            return { total: Number(msg.total), failed: Number(msg.failed) };
          }
          const answer = answerFromLine(msg);
          // Lines carry the item's id; a server that sent only the index gets it filled in from the request.
          const itemId = items[answer.index]?.id;
          if (answer.id === undefined && itemId !== undefined) answer.id = itemId;
          yield answer;
        }
      }
      throw new DeskmlError(`${what}: the stream ended without its summary line`);
    } finally {
      scope.done();
      if (reader) {
        // Leaving early (break, throw): drop the connection so the server cancels what is queued.
        reader.cancel().catch(() => undefined);
      }
    }
  }

  /**
   * Opens the WebSocket stream `/v2/stream`; the token travels as the subprotocol `bearer.<token>`
   * (browsers cannot set headers on a WebSocket).
   */
  async stream(options: CallOptions = {}): Promise<InferenceStream> {
    const Impl = this.WebSocketImpl;
    if (!Impl) {
      throw new DeskmlError('no WebSocket implementation: pass { WebSocket } (in Node, use deskml/node)');
    }
    const url = `${this.url.replace(/^http/, 'ws')}/v2/stream`;
    const protocols = this.token ? [`bearer.${this.token}`] : [];
    return openWebSocket(Impl, url, protocols, options.timeoutMs ?? this.timeoutMs, options.signal).then(
      (ws) => new InferenceStream(ws),
    );
  }

  /** `POST /v2/repository/index`: every model version and its state (`ready: true`: only READY ones). */
  repositoryIndex(options: CallOptions & { ready?: boolean } = {}): Promise<RepositoryEntry[]> {
    const body = options.ready !== undefined ? JSON.stringify({ ready: options.ready }) : '{}';
    return this.json('/v2/repository/index', { ...options, method: 'POST', body }, 'repository index');
  }

  /** `POST /v2/repository/models/{m}/load`: loads the newest version and waits. */
  async load(model: string, options: CallOptions = {}): Promise<void> {
    await this.json(
      `/v2/repository/models/${encodeURIComponent(model)}/load`,
      { ...options, method: 'POST', body: '{}' },
      `load '${model}'`,
    );
  }

  /** `POST /v2/repository/models/{m}/unload`: unloads once queued requests have finished. */
  async unload(model: string, options: CallOptions = {}): Promise<void> {
    await this.json(
      `/v2/repository/models/${encodeURIComponent(model)}/unload`,
      { ...options, method: 'POST', body: '{}' },
      `unload '${model}'`,
    );
  }

  /** `GET .../stats`: the model's counters (`model_stats`). */
  stats(model: string, options: ModelOptions = {}): Promise<{ model_stats: Record<string, unknown>[] }> {
    return this.json(`${modelPath(model, options.version)}/stats`, options, `stats of '${model}'`);
  }

  /** `GET /metrics`: the Prometheus text. */
  metrics(options: CallOptions = {}): Promise<string> {
    return this.fetchOk('/metrics', options, 'metrics', (res) => res.text());
  }
}

function answerFromLine(msg: Record<string, unknown>): StreamAnswer {
  const progress = (msg.progress as { done: number; total: number }) ?? { done: 0, total: 0 };
  const answer: StreamAnswer = { index: Number(msg.index), progress };
  if (typeof msg.id === 'string') answer.id = msg.id;
  if (typeof msg.error === 'string') answer.error = new DeskmlError(msg.error, { body: msg });
  else answer.result = decodeInferResponse(msg);
  return answer;
}
