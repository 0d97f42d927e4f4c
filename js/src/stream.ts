// The WebSocket stream on /v2/stream: requests with ids, answers in completion order, cancel by id.
// Browser-safe: works with the browser's WebSocket and with `ws` (which deskml/node passes in).

import { DeskmlError } from './errors.js';
import { type InferOptions, type InferResult, buildInferBody, decodeInferResponse } from './protocol.js';
import { type Tensor, parseResponseJson, stringifyRequest } from './tensor.js';

/** The part of the WebSocket API this package uses (the browser's and `ws`'s both have it). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (event: any) => void): void;
  removeEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

/** Opens a WebSocket and waits for it to be open (or fail, time out, be aborted). */
export function openWebSocket(
  Impl: WebSocketConstructor,
  url: string,
  protocols: string[],
  timeoutMs?: number,
  signal?: AbortSignal,
): Promise<WebSocketLike> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DeskmlError('WebSocket: aborted', { cause: signal.reason }));
      return;
    }
    const ws = new Impl(url, protocols);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('error', onError);
      ws.removeEventListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: DeskmlError) => {
      cleanup();
      try {
        ws.close();
      } catch {
        // not open yet
      }
      reject(err);
    };
    const onOpen = () => {
      cleanup();
      resolve(ws);
    };
    const onError = (ev: { message?: string; error?: Error }) => {
      // A browser says nothing about why; `ws` says "Unexpected server response: 401".
      const text = ev?.message ?? ev?.error?.message ?? 'connection failed';
      const m = /Unexpected server response: (\d+)/.exec(text);
      fail(
        new DeskmlError(`WebSocket ${url}: ${text}`, m ? { status: Number(m[1]), cause: ev.error } : { cause: ev?.error }),
      );
    };
    const onClose = (ev: { code?: number }) =>
      fail(new DeskmlError(`WebSocket ${url}: closed before opening (code ${ev?.code ?? '?'})`));
    const onAbort = () => fail(new DeskmlError('WebSocket: aborted', { cause: signal?.reason }));
    ws.addEventListener('open', onOpen);
    ws.addEventListener('error', onError);
    ws.addEventListener('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0) {
      timer = setTimeout(() => fail(new DeskmlError(`WebSocket ${url}: not open after ${timeoutMs} ms`)), timeoutMs);
    }
  });
}

/** One answer on the stream: `result`, or `error` (a failed or cancelled request). */
export interface StreamMessage {
  id: string;
  result?: InferResult;
  error?: DeskmlError;
}

/** Options of a request on the WebSocket stream (tensors travel as JSON). */
export type StreamInferOptions = Omit<InferOptions, 'binary' | 'timeoutMs'>;

interface Pending {
  resolve: (r: InferResult) => void;
  reject: (e: DeskmlError) => void;
}

/**
 * A WebSocket connection to `/v2/stream`. `infer()` sends a request and resolves with its answer;
 * `answers()` iterates over every answer as it arrives; `cancel(id)` cancels by id; `close()` closes
 * the connection (which cancels whatever is still queued on the server).
 */
export class InferenceStream {
  private readonly pending = new Map<string, Pending[]>();
  private readonly listeners = new Set<(m: StreamMessage | null) => void>();
  private nextId = 1;
  private closedError: DeskmlError | undefined;

  constructor(private readonly ws: WebSocketLike) {
    ws.addEventListener('message', (ev: { data: unknown }) => this.onMessage(ev.data));
    ws.addEventListener('close', (ev: { code?: number; reason?: string }) =>
      this.shutdown(new DeskmlError(`WebSocket closed (code ${ev?.code ?? '?'}${ev?.reason ? `: ${ev.reason}` : ''})`)),
    );
    ws.addEventListener('error', (ev: { message?: string }) =>
      this.shutdown(new DeskmlError(`WebSocket error: ${ev?.message ?? 'connection failed'}`)),
    );
  }

  /** The number of requests sent and not yet answered. */
  get inFlight(): number {
    let n = 0;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  /**
   * Sends one inference request and resolves with its answer (rejects with DeskmlError when it fails
   * or is cancelled). The id is `options.id`, else a fresh one; `options.signal` cancels it.
   */
  async infer(model: string, inputs: Tensor[], options: StreamInferOptions = {}): Promise<InferResult> {
    return this.send(model, inputs, options).result;
  }

  /** Like `infer`, but also returns the request's id (for `cancel`); throws DeskmlError at once for a
   *  bad tensor or a closed stream. */
  send(model: string, inputs: Tensor[], options: StreamInferOptions = {}): { id: string; result: Promise<InferResult> } {
    if (this.closedError) throw this.closedError;
    const id = options.id ?? `r${this.nextId++}`;
    const { body } = buildInferBody(inputs, { ...options, id }, 'json');
    const msg: Record<string, unknown> = { ...body, id, model };
    if (options.version !== undefined) msg.version = String(options.version);
    let entry!: Pending;
    const result = new Promise<InferResult>((resolve, reject) => {
      entry = { resolve, reject };
    });
    // Callers that read answers() instead of this promise must not see unhandled rejections.
    result.catch(() => undefined);
    const list = this.pending.get(id) ?? [];
    list.push(entry);
    this.pending.set(id, list);
    this.ws.send(stringifyRequest(msg));
    if (options.signal) {
      const signal = options.signal;
      const onAbort = () => this.cancel(id);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        result.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => undefined);
      }
    }
    return { id, result };
  }

  /** Cancels every request of this connection with this id; each is answered with an error. */
  cancel(id: string): void {
    if (this.closedError || this.ws.readyState !== OPEN) return;
    this.ws.send(JSON.stringify({ type: 'cancel', id }));
  }

  /** Every answer from now on, in arrival order; ends when the connection closes. */
  async *answers(): AsyncGenerator<StreamMessage, void, undefined> {
    const queue: (StreamMessage | null)[] = [];
    let wake: (() => void) | undefined;
    const listener = (m: StreamMessage | null) => {
      queue.push(m);
      wake?.();
    };
    this.listeners.add(listener);
    if (this.closedError) queue.push(null);
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const m = queue.shift()!;
        if (m === null) return;
        yield m;
      }
    } finally {
      this.listeners.delete(listener);
    }
  }

  /** Closes the connection; requests still unanswered are rejected (and cancelled on the server). */
  close(): void {
    this.shutdown(new DeskmlError('the stream was closed'));
    try {
      this.ws.close(1000);
    } catch {
      // already closing
    }
  }

  private onMessage(data: unknown): void {
    let msg: Record<string, unknown>;
    try {
      msg = parseResponseJson(
        typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer),
      ) as Record<string, unknown>;
    } catch {
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const answer: StreamMessage = { id: id ?? '' };
    if (typeof msg.error === 'string') {
      answer.error = new DeskmlError(msg.error, { body: msg });
    } else {
      try {
        answer.result = decodeInferResponse(msg);
      } catch (e) {
        answer.error = e instanceof DeskmlError ? e : new DeskmlError(String(e));
      }
    }
    const list = id !== undefined ? this.pending.get(id) : undefined;
    const p = list?.shift();
    if (list && list.length === 0) this.pending.delete(id!);
    if (p) {
      if (answer.error) p.reject(answer.error);
      else p.resolve(answer.result!);
    } else if (id === undefined && answer.error && this.inFlight === 1) {
      // An answer without an id (a refused message) when exactly one request is waiting.
      const [onlyId, onlyList] = [...this.pending.entries()][0]!;
      onlyList.shift()!.reject(answer.error);
      this.pending.delete(onlyId);
    }
    for (const l of this.listeners) l(answer);
  }

  private shutdown(err: DeskmlError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const list of this.pending.values()) for (const p of list) p.reject(err);
    this.pending.clear();
    for (const l of this.listeners) l(null);
  }
}
