// Writes tiny ONNX models for the tests without any ONNX tooling: a hand-rolled protobuf encoder
// for the few ModelProto fields an Identity graph needs.

const ELEM_TYPE = {
  FP32: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, BYTES: 8, BOOL: 9,
  FP16: 10, FP64: 11, UINT32: 12, UINT64: 13, BF16: 16,
};

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}
const key = (field, wire) => varint((field << 3) | wire);
const int = (field, n) => Buffer.concat([key(field, 0), varint(n)]);
const bytes = (field, b) => Buffer.concat([key(field, 2), varint(b.length), b]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, ...parts) => bytes(field, Buffer.concat(parts));

// ValueInfoProto { name, type { tensor_type { elem_type, shape { dim { dim_param } ... } } } }
function valueInfo(field, name, elemType, rank) {
  const dims = Array.from({ length: rank }, (_, i) => msg(1, str(2, 'NM'[i % 2] + i)));
  return msg(field, str(1, name), msg(2, msg(1, int(1, elemType), msg(2, ...dims))));
}

/** y = Identity(x) for a tensor of `datatype` (a KServe name) and `rank` dynamic dimensions. */
export function identityModel(datatype, rank = 1) {
  const t = ELEM_TYPE[datatype];
  if (t === undefined) throw new Error(`no ONNX type for ${datatype}`);
  const node = msg(1, str(1, 'x'), str(2, 'y'), str(3, 'id'), str(4, 'Identity'));
  const graph = msg(7, node, str(2, 'g'), valueInfo(11, 'x', t, rank), valueInfo(12, 'y', t, rank));
  const opset = msg(8, str(1, ''), int(2, 17));
  return Buffer.concat([int(1, 8), str(2, 'deskml-js-tests'), graph, opset]);
}

/**
 * y = x·x·x·...·x (`count` MatMuls) for a square FP32 matrix x: slow enough, for a few hundred
 * rows, that requests sent after one are still queued when a cancel or a deadline reaches them.
 */
export function matmulChainModel(count) {
  const nodes = [];
  let prev = 'x';
  for (let i = 0; i < count; i++) {
    const out = i === count - 1 ? 'y' : `t${i}`;
    nodes.push(msg(1, str(1, prev), str(1, 'x'), str(2, out), str(3, `mm${i}`), str(4, 'MatMul')));
    prev = out;
  }
  const graph = msg(7, ...nodes, str(2, 'g'), valueInfo(11, 'x', ELEM_TYPE.FP32, 2), valueInfo(12, 'y', ELEM_TYPE.FP32, 2));
  return Buffer.concat([int(1, 8), str(2, 'deskml-js-tests'), graph, msg(8, str(1, ''), int(2, 17))]);
}
