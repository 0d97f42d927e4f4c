// KServe v2 inference request and response bodies, shared by HTTP, WebSocket and the sidecar. Browser-safe.

import { DeskmlError } from './errors.js';
import {
  type Datatype,
  type Tensor,
  checkTensor,
  isDatatype,
  tensorBytes,
  tensorFromBytes,
  tensorFromJson,
  tensorJsonData,
} from './tensor.js';

/** Options of one inference call. */
export interface InferOptions {
  /** Model version (default: the newest). */
  version?: string | number;
  /** Request id, echoed in the answer. */
  id?: string;
  /** Names of the outputs to return (default: all). */
  outputs?: string[];
  /**
   * Tensors as raw bytes: the binary extension over HTTP, `data_base64` over the sidecar.
   * Default true: exact for every datatype (64-bit integers included) and cheaper than JSON.
   * False sends and receives JSON `data` arrays. Streaming (NDJSON, WebSocket) is always JSON.
   */
  binary?: boolean;
  /** Higher runs first (request parameter `priority`). */
  priority?: number;
  /** Server-side deadline in microseconds (request parameter `timeout`); past it the answer is 504. */
  timeoutUs?: number;
  /** Further request parameters, merged as given. */
  parameters?: Record<string, unknown>;
  /** Abort the call (the HTTP request is closed, which cancels it in the server's queue). */
  signal?: AbortSignal;
  /** Client-side limit for this call in milliseconds (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** A model's answer with typed output tensors. */
export interface InferResult {
  id?: string;
  modelName: string;
  modelVersion: string;
  outputs: Tensor[];
  parameters?: Record<string, unknown>;
  /** The output with this name; throws DeskmlError when there is none. */
  output(name: string): Tensor;
}

export type TensorEncoding = 'json' | 'binary' | 'base64';

interface WireOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown;
  data_base64?: string;
  parameters?: Record<string, unknown>;
}

/**
 * The request body for `inputs`: JSON `data`, binary parts (`binary_data_size`, bytes in `parts`),
 * or `data_base64` (through `encodeBase64`). Checks every tensor first.
 */
export function buildInferBody(
  inputs: readonly Tensor[],
  options: InferOptions,
  encoding: TensorEncoding,
  encodeBase64?: (bytes: Uint8Array) => string,
): { body: Record<string, unknown>; parts: Uint8Array[] } {
  if (!Array.isArray(inputs) || inputs.length === 0) throw new DeskmlError('infer needs at least one input tensor');
  const parts: Uint8Array[] = [];
  const wireInputs = inputs.map((t) => {
    checkTensor(t);
    const w: Record<string, unknown> = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (encoding === 'json') {
      w.data = tensorJsonData(t);
    } else if (encoding === 'binary') {
      const bytes = tensorBytes(t);
      parts.push(bytes);
      w.parameters = { binary_data_size: bytes.byteLength };
    } else {
      if (!encodeBase64) throw new DeskmlError('no base64 encoder');
      w.data_base64 = encodeBase64(tensorBytes(t));
    }
    return w;
  });
  const body: Record<string, unknown> = { inputs: wireInputs };
  if (options.id !== undefined) body.id = options.id;
  const binaryOut = encoding !== 'json';
  if (options.outputs) {
    body.outputs = options.outputs.map((name) =>
      binaryOut ? { name, parameters: { binary_data: true } } : { name },
    );
  }
  const params: Record<string, unknown> = { ...(options.parameters ?? {}) };
  if (binaryOut && !options.outputs) params.binary_data_output = true;
  if (options.priority !== undefined) params.priority = options.priority;
  if (options.timeoutUs !== undefined) params.timeout = options.timeoutUs;
  if (Object.keys(params).length > 0) body.parameters = params;
  return { body, parts };
}

function makeResult(json: Record<string, unknown>, outputs: Tensor[]): InferResult {
  const result: InferResult = {
    modelName: String(json.model_name ?? ''),
    modelVersion: String(json.model_version ?? ''),
    outputs,
    output(name: string): Tensor {
      const t = outputs.find((o) => o.name === name);
      if (!t) {
        throw new DeskmlError(`no output '${name}' (outputs: ${outputs.map((o) => o.name).join(', ')})`);
      }
      return t;
    },
  };
  if (typeof json.id === 'string') result.id = json.id;
  if (json.parameters && typeof json.parameters === 'object') {
    result.parameters = json.parameters as Record<string, unknown>;
  }
  return result;
}

/**
 * A response body -> InferResult. Outputs with `parameters.binary_data_size` take their bytes, in
 * order, from `binary` (what followed the JSON); `data_base64` outputs go through `decodeBase64`.
 */
export function decodeInferResponse(
  json: unknown,
  binary?: Uint8Array,
  decodeBase64?: (text: string) => Uint8Array,
): InferResult {
  if (!json || typeof json !== 'object' || !Array.isArray((json as { outputs?: unknown }).outputs)) {
    throw new DeskmlError('the answer has no "outputs" array', { body: json });
  }
  const j = json as Record<string, unknown> & { outputs: WireOutput[] };
  let offset = 0;
  const outputs = j.outputs.map((o): Tensor => {
    if (!isDatatype(o.datatype)) throw new DeskmlError(`output '${o.name}': unknown datatype ${o.datatype}`);
    const dt = o.datatype as Datatype;
    const size = o.parameters?.binary_data_size;
    if (typeof size === 'number') {
      if (!binary || offset + size > binary.length) {
        throw new DeskmlError(`output '${o.name}': binary data missing or truncated`);
      }
      const bytes = binary.subarray(offset, offset + size);
      offset += size;
      return tensorFromBytes(o.name, dt, o.shape, bytes);
    }
    if (typeof o.data_base64 === 'string') {
      if (!decodeBase64) throw new DeskmlError(`output '${o.name}': no base64 decoder`);
      return tensorFromBytes(o.name, dt, o.shape, decodeBase64(o.data_base64));
    }
    return tensorFromJson(o.name, dt, o.shape, o.data ?? []);
  });
  if (binary && offset !== binary.length) {
    throw new DeskmlError(`${binary.length - offset} unexpected bytes after the binary outputs`);
  }
  return makeResult(j, outputs);
}
