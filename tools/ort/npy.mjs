// A minimal .npy (NumPy array file) reader and writer: versions 1-3, little-endian, C order.
// The dtypes are the ones onnxruntime-node can take and give back as tensors.

import { readFileSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';

// numpy descr (without the byte-order char) -> [ORT tensor type, typed array constructor]
const DTYPES = {
  f4: ['float32', Float32Array],
  f8: ['float64', Float64Array],
  f2: ['float16', Uint16Array], // raw IEEE half bits; onnxruntime-node takes and gives Uint16Array
  i8: ['int64', BigInt64Array],
  u8: ['uint64', BigUint64Array],
  i4: ['int32', Int32Array],
  u4: ['uint32', Uint32Array],
  i2: ['int16', Int16Array],
  u2: ['uint16', Uint16Array],
  i1: ['int8', Int8Array],
  u1: ['uint8', Uint8Array],
  b1: ['bool', Uint8Array],
};
const DESCR_OF_TYPE = Object.fromEntries(
  Object.entries(DTYPES).map(([descr, [type]]) => [type, (descr.endsWith('1') ? '|' : '<') + descr]),
);

if (endianness() !== 'LE') throw new Error('npy.mjs assumes a little-endian host');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// Parses the header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }
function parseHeader(text, path) {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw new Error(`${path}: malformed .npy header: ${text.trim()}`);
  if (fortran[1] === 'True') throw new Error(`${path}: Fortran-order arrays are not supported`);
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw new Error(`${path}: bad dimension '${s}' in .npy shape`);
      return Number(s);
    });
  return { descr: descr[1], dims };
}

/** Reads a .npy file: returns { type, dims, data } with data a typed array of the ORT tensor type. */
export function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  let headerLen, offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    throw new Error(`${path}: unsupported .npy version ${major}`);
  }
  if (offset + headerLen > buf.length) throw new Error(`${path}: truncated .npy header`);
  const { descr, dims } = parseHeader(buf.toString(major === 3 ? 'utf8' : 'latin1', offset, offset + headerLen), path);
  const order = descr[0];
  const code = descr.slice(1);
  const entry = DTYPES[code];
  if (!entry || !['<', '|', '='].includes(order)) {
    throw new Error(`${path}: unsupported dtype '${descr}' (little-endian ${Object.keys(DTYPES).join(', ')})`);
  }
  const [type, Ctor] = entry;
  const count = dims.reduce((a, b) => a * b, 1);
  const dataStart = offset + headerLen;
  const byteLen = count * Ctor.BYTES_PER_ELEMENT;
  if (dataStart + byteLen > buf.length) {
    throw new Error(`${path}: expected ${byteLen} data bytes for shape [${dims}], found ${buf.length - dataStart}`);
  }
  // Copy into a fresh, aligned buffer: the file's data offset need not be aligned for the element size.
  const bytes = new Uint8Array(byteLen);
  bytes.set(buf.subarray(dataStart, dataStart + byteLen));
  return { type, dims, data: new Ctor(bytes.buffer, 0, count) };
}

/** Writes a typed array of the given ORT tensor type and dims as a version-1 .npy file. */
export function writeNpy(path, type, dims, data) {
  const descr = DESCR_OF_TYPE[type];
  if (!descr) throw new Error(`cannot write a '${type}' tensor as .npy`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let body;
  if (type === 'bool' && !(data instanceof Uint8Array)) {
    body = Buffer.from(Array.from(data, (v) => (v ? 1 : 0)));
  } else {
    body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}
