// Typed tensors: KServe v2 datatypes <-> TypedArrays, shape checks, and the two wire layouts
// (JSON `data` and the binary tensor extension's little-endian bytes). Browser-safe.

import { DeskmlError } from './errors.js';

/** The KServe v2 tensor datatypes deskml accepts. */
export type Datatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

/** The array type that holds each datatype's elements. FP16 and BF16 are raw 16-bit patterns;
 *  BOOL is one byte per element (0 or 1); BYTES is one Uint8Array per element. */
export interface DataOf {
  BOOL: Uint8Array;
  UINT8: Uint8Array;
  UINT16: Uint16Array;
  UINT32: Uint32Array;
  UINT64: BigUint64Array;
  INT8: Int8Array;
  INT16: Int16Array;
  INT32: Int32Array;
  INT64: BigInt64Array;
  FP16: Uint16Array;
  BF16: Uint16Array;
  FP32: Float32Array;
  FP64: Float64Array;
  BYTES: Uint8Array[];
}

export type TensorData = DataOf[Datatype];

/** A named tensor: datatype, shape (row major) and its elements in a typed array. */
export interface Tensor<D extends Datatype = Datatype> {
  name: string;
  datatype: D;
  shape: number[];
  data: DataOf[D];
}

/** What a caller may give as an input's elements: the typed array itself, or plain values
 *  (numbers, bigints, booleans; strings for BYTES), flat or nested, converted by `tensor()`. */
export type TensorInit<D extends Datatype> =
  | DataOf[D]
  | ArrayLike<number | bigint | boolean | string | Uint8Array>
  | unknown[];

type NumericCtor =
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor
  | Uint32ArrayConstructor
  | BigUint64ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

const CTORS: Record<Exclude<Datatype, 'BYTES'>, NumericCtor> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  BF16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

export const DATATYPES: readonly Datatype[] = [...(Object.keys(CTORS) as Datatype[]), 'BYTES'];

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('deskml: the binary tensor layout is little-endian; this host is big-endian');
}

export function isDatatype(s: unknown): s is Datatype {
  return typeof s === 'string' && (DATATYPES as readonly string[]).includes(s);
}

/** Bytes per element, or 0 for BYTES (variable length). */
export function elementSize(datatype: Datatype): number {
  return datatype === 'BYTES' ? 0 : CTORS[datatype].BYTES_PER_ELEMENT;
}

/** The number of elements a shape holds; throws on a negative or non-integer dimension. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new DeskmlError(`bad dimension ${String(d)} in shape [${shape.join(',')}]`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new DeskmlError(`shape [${shape.join(',')}] is too large`);
  return n;
}

function flatten(values: unknown, out: unknown[]): void {
  if (Array.isArray(values)) {
    for (const v of values) flatten(v, out);
  } else {
    out.push(values);
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Converts plain values (flat or nested arrays) to the datatype's array. A typed array of the
 *  right kind is taken as is (not copied). */
export function toTensorData<D extends Datatype>(datatype: D, values: TensorInit<D>): DataOf[D] {
  if (datatype === 'BYTES') {
    const flat: unknown[] = [];
    flatten(Array.from(values as ArrayLike<unknown>), flat);
    return flat.map((v) => {
      if (v instanceof Uint8Array) return v;
      if (typeof v === 'string') return utf8Encoder.encode(v);
      throw new DeskmlError(`a BYTES element must be a string or a Uint8Array, not ${typeof v}`);
    }) as DataOf[D];
  }
  const ctor = CTORS[datatype as Exclude<Datatype, 'BYTES'>];
  if (values instanceof ctor) return values as DataOf[D];
  if (ArrayBuffer.isView(values)) {
    throw new DeskmlError(
      `${datatype} data must be a ${ctor.name} (got ${values.constructor.name}); ` +
        'convert it explicitly to avoid silent rounding',
    );
  }
  const flat: unknown[] = [];
  flatten(Array.from(values as ArrayLike<unknown>), flat);
  const big = datatype === 'INT64' || datatype === 'UINT64';
  if (big) {
    const arr = new (ctor as BigInt64ArrayConstructor | BigUint64ArrayConstructor)(flat.length);
    flat.forEach((v, i) => {
      if (typeof v === 'bigint') arr[i] = v;
      else if (typeof v === 'number' && Number.isSafeInteger(v)) arr[i] = BigInt(v);
      else throw new DeskmlError(`${datatype} element ${i} is not an integer: ${String(v)}`);
    });
    return arr as DataOf[D];
  }
  const arr = new (ctor as Float64ArrayConstructor)(flat.length);
  const half = datatype === 'FP16' ? floatToHalf : datatype === 'BF16' ? floatToBf16 : null;
  flat.forEach((v, i) => {
    let x: number;
    if (typeof v === 'number') x = v;
    else if (typeof v === 'boolean') x = v ? 1 : 0;
    else if (typeof v === 'bigint') x = Number(v);
    else throw new DeskmlError(`${datatype} element ${i} is not a number: ${String(v)}`);
    if (datatype === 'BOOL') x = x ? 1 : 0;
    arr[i] = half ? half(x) : x;
  });
  return arr as unknown as DataOf[D];
}

/** Builds a checked tensor: converts `values` to the datatype's array and checks that the
 *  element count matches the shape. Throws DeskmlError before anything is sent. */
export function tensor<D extends Datatype>(
  name: string,
  datatype: D,
  shape: readonly number[],
  values: TensorInit<D>,
): Tensor<D> {
  if (!isDatatype(datatype)) throw new DeskmlError(`unknown datatype ${String(datatype)}`);
  const data = toTensorData(datatype, values);
  const t: Tensor<D> = { name, datatype, shape: [...shape], data };
  checkTensor(t);
  return t;
}

/** Checks a tensor's datatype, array kind and element count against its shape. */
export function checkTensor(t: Tensor): void {
  if (typeof t.name !== 'string' || t.name.length === 0) throw new DeskmlError('a tensor needs a name');
  if (!isDatatype(t.datatype)) throw new DeskmlError(`tensor '${t.name}': unknown datatype ${String(t.datatype)}`);
  const n = elementCount(t.shape);
  if (t.datatype === 'BYTES') {
    if (!Array.isArray(t.data) || !t.data.every((e) => e instanceof Uint8Array)) {
      throw new DeskmlError(`tensor '${t.name}': BYTES data must be an array of Uint8Array`);
    }
  } else if (!(t.data instanceof CTORS[t.datatype])) {
    throw new DeskmlError(
      `tensor '${t.name}': ${t.datatype} data must be a ${CTORS[t.datatype].name}` +
        (t.data ? `, not ${(t.data as object).constructor.name}` : ''),
    );
  }
  if (t.data.length !== n) {
    throw new DeskmlError(
      `tensor '${t.name}' has ${t.data.length} elements but shape [${t.shape.join(',')}] holds ${n}`,
    );
  }
}

/** The elements of a BYTES tensor decoded as UTF-8 strings. */
export function tensorStrings(t: Tensor): string[] {
  if (t.datatype !== 'BYTES') throw new DeskmlError(`tensor '${t.name}' is ${t.datatype}, not BYTES`);
  return (t.data as Uint8Array[]).map((b) => utf8Decoder.decode(b));
}

/** A tensor's elements as plain JS numbers (FP16/BF16 decoded, 64-bit integers via Number()). */
export function tensorNumbers(t: Tensor): number[] {
  if (t.datatype === 'BYTES') throw new DeskmlError(`tensor '${t.name}' is BYTES`);
  if (t.datatype === 'FP16') return Array.from(t.data as Uint16Array, halfToFloat);
  if (t.datatype === 'BF16') return Array.from(t.data as Uint16Array, bf16ToFloat);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

// ---- 16-bit floats -------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half bits -> number. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number -> IEEE 754 half bits, rounded to nearest even. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** bfloat16 bits -> number. */
export function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** number -> bfloat16 bits, rounded to nearest even. */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- the binary layout ---------------------------------------------------------------------

/** A tensor's bytes in the binary extension's layout (little-endian, row major; BYTES elements
 *  each preceded by a 4-byte little-endian length). Numeric data is not copied. */
export function tensorBytes(t: Tensor): Uint8Array {
  if (t.datatype === 'BYTES') {
    const items = t.data as Uint8Array[];
    const total = items.reduce((n, b) => n + 4 + b.length, 0);
    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    let off = 0;
    for (const b of items) {
      view.setUint32(off, b.length, true);
      out.set(b, off + 4);
      off += 4 + b.length;
    }
    return out;
  }
  const a = t.data as Exclude<TensorData, Uint8Array[]>;
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Decodes `bytes` (the binary layout) into the datatype's array; copies, so the result is aligned. */
export function tensorFromBytes<D extends Datatype>(
  name: string,
  datatype: D,
  shape: number[],
  bytes: Uint8Array,
): Tensor<D> {
  const n = elementCount(shape);
  let data: TensorData;
  if (datatype === 'BYTES') {
    const items: Uint8Array[] = [];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    while (off < bytes.length) {
      if (off + 4 > bytes.length) throw new DeskmlError(`output '${name}': truncated BYTES element`);
      const len = view.getUint32(off, true);
      if (off + 4 + len > bytes.length) throw new DeskmlError(`output '${name}': truncated BYTES element`);
      items.push(bytes.slice(off + 4, off + 4 + len));
      off += 4 + len;
    }
    data = items;
  } else {
    if (!isDatatype(datatype)) throw new DeskmlError(`output '${name}': unknown datatype ${String(datatype)}`);
    const ctor = CTORS[datatype as Exclude<Datatype, 'BYTES'>];
    if (bytes.length !== n * ctor.BYTES_PER_ELEMENT) {
      throw new DeskmlError(
        `output '${name}': ${bytes.length} bytes for ${n} ${datatype} elements of shape [${shape.join(',')}]`,
      );
    }
    const copy = bytes.slice();
    data = new (ctor as Float64ArrayConstructor)(copy.buffer, 0, n) as unknown as TensorData;
  }
  const t = { name, datatype, shape, data } as Tensor<D>;
  checkTensor(t);
  return t;
}

// ---- the JSON layout -----------------------------------------------------------------------

/** A tensor's elements as JSON-ready values: numbers (FP16/BF16 decoded), booleans for BOOL,
 *  strings for BYTES (UTF-8), bigints for 64-bit integers (see `stringifyRequest`). */
export function tensorJsonData(t: Tensor): unknown[] {
  switch (t.datatype) {
    case 'BYTES':
      return tensorStrings(t);
    case 'BOOL':
      return Array.from(t.data as Uint8Array, (v) => v !== 0);
    case 'FP16':
      return Array.from(t.data as Uint16Array, halfToFloat);
    case 'BF16':
      return Array.from(t.data as Uint16Array, bf16ToFloat);
    default:
      return Array.from(t.data as ArrayLike<number | bigint>);
  }
}

/** The JSON `data` of a response output -> a typed tensor. Strings of BYTES become their UTF-8 bytes. */
export function tensorFromJson(name: string, datatype: Datatype, shape: number[], data: unknown): Tensor {
  const flat: unknown[] = [];
  flatten(data, flat);
  // parseResponseJson turns integers too long for a double into strings; see there.
  const big = datatype === 'INT64' || datatype === 'UINT64';
  const values = flat.map((v) => (typeof v === 'string' && datatype !== 'BYTES' ? (big ? BigInt(v) : Number(v)) : v));
  const t = { name, datatype, shape, data: toTensorData(datatype, values) } as Tensor;
  checkTensor(t);
  return t;
}

/** JSON.stringify that writes bigints as exact integer literals (INT64/UINT64 data). */
export function stringifyRequest(value: unknown): string {
  let tag: string | undefined;
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    tag ??= `\u0001deskml-bigint-${Math.random().toString(36).slice(2)}:`;
    return tag + v.toString();
  });
  if (tag === undefined) return text;
  const escaped = JSON.stringify(tag).slice(1, -1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  return text.replace(new RegExp(`"${escaped}(-?\\d+)"`, 'g'), '$1');
}

const LONG_INTEGER = /"(?:[^"\\]|\\.)*"|(?<![\d.eE+-])(-?\d{16,})(?![\d.eE])/g;

/**
 * JSON.parse for inference answers that keeps integers of 16 digits or more exact: outside strings,
 * each becomes a string first, which `tensorFromJson` turns into a bigint for INT64/UINT64 data
 * (and a number otherwise). Plain JSON.parse would round 2^53 + 1 to 2^53.
 */
export function parseResponseJson(text: string): unknown {
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return JSON.parse(text.replace(LONG_INTEGER, (m: string, digits: string | undefined) => (digits ? `"${digits}"` : m)));
}
