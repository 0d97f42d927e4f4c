// The one error type the package throws. Browser-safe.

export interface DeskmlErrorOptions {
  /** HTTP status of the answer (401, 404, 503, ...); absent for client-side and transport errors. */
  status?: number;
  /** Seconds to wait before retrying: the `Retry-After` header, or the sidecar's `data.retry_after`. */
  retryAfter?: number;
  /** JSON-RPC error code from the stdio sidecar (-32001 unknown model, ...). */
  code?: number;
  /** deskml's StatusCode name when the server gave one (`NotFound`, `InvalidArgument`, ...). */
  statusName?: string;
  /** The parsed error body, when there was one. */
  body?: unknown;
  cause?: unknown;
}

/**
 * An error from deskml or from this client: an HTTP error answer (`status`, the server's
 * `{"error"}` text as `message`, `retryAfter`), a JSON-RPC error from the sidecar (`code`,
 * `statusName`), a stream item that failed, a timeout or abort (`name` stays DeskmlError;
 * `cause` holds the AbortSignal's reason), or a tensor rejected before sending.
 */
export class DeskmlError extends Error {
  readonly status?: number;
  readonly retryAfter?: number;
  readonly code?: number;
  readonly statusName?: string;
  readonly body?: unknown;

  constructor(message: string, options: DeskmlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeskmlError';
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
    if (options.code !== undefined) this.code = options.code;
    if (options.statusName !== undefined) this.statusName = options.statusName;
    if (options.body !== undefined) this.body = options.body;
  }
}

/** `Retry-After` in seconds (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (value == null || value === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, Math.ceil((t - Date.now()) / 1000));
}
