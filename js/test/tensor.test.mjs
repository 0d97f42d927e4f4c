// Typed tensors and the wire codecs, without a server; and that the browser entry stays browser-safe.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  DeskmlClient,
  DeskmlError,
  bf16ToFloat,
  elementCount,
  floatToBf16,
  floatToHalf,
  halfToFloat,
  tensor,
  tensorBytes,
  tensorFromBytes,
  tensorNumbers,
  tensorStrings,
} from '../dist/index.js';
import { parseResponseJson, stringifyRequest } from '../dist/tensor.js';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

describe('tensor()', () => {
  it('flattens nested values into the datatype\'s typed array', () => {
    const t = tensor('x', 'FP32', [2, 3], [[1, 2, 3], [4, 5, 6]]);
    assert.ok(t.data instanceof Float32Array);
    assert.deepEqual(Array.from(t.data), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(t.shape, [2, 3]);
  });

  it('maps every datatype to its array', () => {
    const kinds = {
      BOOL: Uint8Array, UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, UINT64: BigUint64Array,
      INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, INT64: BigInt64Array, FP16: Uint16Array,
      BF16: Uint16Array, FP32: Float32Array, FP64: Float64Array,
    };
    for (const [dt, ctor] of Object.entries(kinds)) {
      assert.ok(tensor('x', dt, [2], [1, 0]).data instanceof ctor, dt);
    }
    const b = tensor('s', 'BYTES', [2], ['héllo', new Uint8Array([0, 255])]);
    assert.ok(Array.isArray(b.data) && b.data.every((e) => e instanceof Uint8Array));
    assert.equal(tensorStrings(tensor('s', 'BYTES', [1], ['héllo']))[0], 'héllo');
  });

  it('takes a typed array of the right kind without copying', () => {
    const data = new Float32Array([1, 2]);
    assert.equal(tensor('x', 'FP32', [1, 2], data).data, data);
  });

  it('rejects an element count that does not match the shape', () => {
    assert.throws(() => tensor('x', 'FP32', [1, 30], new Float32Array(29)), (e) =>
      e instanceof DeskmlError && /29 elements but shape \[1,30\] holds 30/.test(e.message));
    assert.throws(() => tensor('x', 'BYTES', [3], ['a', 'b']), DeskmlError);
  });

  it('rejects a typed array of another kind, bad dimensions and unknown datatypes', () => {
    assert.throws(() => tensor('x', 'FP32', [2], new Float64Array(2)), /must be a Float32Array/);
    assert.throws(() => tensor('x', 'FP32', [-1, 2], [1, 2]), /bad dimension -1/);
    assert.throws(() => tensor('x', 'FP32', [1.5], [1]), /bad dimension/);
    assert.throws(() => tensor('x', 'FP8', [1], [1]), /unknown datatype/);
    assert.throws(() => tensor('x', 'INT64', [1], [0.5]), /not an integer/);
    assert.equal(elementCount([]), 1);
    assert.equal(elementCount([3, 0]), 0);
  });

  it('keeps 64-bit integers exact', () => {
    const t = tensor('x', 'INT64', [2], [2n ** 53n + 1n, -5]);
    assert.deepEqual(Array.from(t.data), [2n ** 53n + 1n, -5n]);
    assert.throws(() => tensor('x', 'INT64', [1], [2 ** 60]), /not an integer/);
  });
});

describe('16-bit floats', () => {
  it('converts FP16 both ways, rounding to nearest even', () => {
    const cases = [[1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [2 ** -24, 0x0001],
      [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0], [1e6, 0x7c00], [2 ** -26, 0]];
    for (const [x, h] of cases) {
      assert.equal(floatToHalf(x), h, `floatToHalf(${x})`);
      if (x !== 1e6 && x !== 2 ** -26) assert.equal(halfToFloat(h), x, `halfToFloat(${h})`);
    }
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // halfway: to even
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
    assert.deepEqual(tensorNumbers(tensor('h', 'FP16', [3], [0.1, 1.5, -3])), [halfToFloat(floatToHalf(0.1)), 1.5, -3]);
  });

  it('converts BF16 both ways', () => {
    assert.equal(floatToBf16(1), 0x3f80);
    assert.equal(bf16ToFloat(0x3f80), 1);
    assert.equal(bf16ToFloat(floatToBf16(-2.5)), -2.5);
    assert.ok(Number.isNaN(bf16ToFloat(floatToBf16(NaN))));
  });
});

describe('binary layout', () => {
  it('round-trips numeric tensors, little-endian, from unaligned offsets', () => {
    const t = tensor('x', 'FP32', [3], [1.5, -2, 3.25]);
    const bytes = tensorBytes(t);
    assert.deepEqual(Array.from(bytes.subarray(0, 4)), [0, 0, 0xc0, 0x3f]);
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    const back = tensorFromBytes('x', 'FP32', [3], padded.subarray(1));
    assert.deepEqual(Array.from(back.data), [1.5, -2, 3.25]);
    assert.throws(() => tensorFromBytes('x', 'FP32', [4], bytes), /12 bytes for 4 FP32 elements/);
  });

  it('writes BYTES elements with a 4-byte length prefix', () => {
    const t = tensor('s', 'BYTES', [2], ['ab', '']);
    assert.deepEqual(Array.from(tensorBytes(t)), [2, 0, 0, 0, 97, 98, 0, 0, 0, 0]);
    assert.deepEqual(tensorStrings(tensorFromBytes('s', 'BYTES', [2], tensorBytes(t))), ['ab', '']);
    assert.throws(() => tensorFromBytes('s', 'BYTES', [1], new Uint8Array([5, 0, 0, 0, 1])), /truncated/);
  });
});

describe('JSON layout', () => {
  it('writes bigints as exact integer literals', () => {
    assert.equal(stringifyRequest({ data: [2n ** 63n - 1n, -3n], s: 'x' }), '{"data":[9223372036854775807,-3],"s":"x"}');
  });

  it('reads long integers exactly, leaving strings and floats alone', () => {
    const text = '{"a":[18446744073709551615,-9007199254740993,1.2345678901234567,1e-12345678901234567],' +
      '"s":"x,12345678901234567,\\"1234567890123456789"}';
    const j = parseResponseJson(text);
    assert.deepEqual(j.a.slice(0, 2), ['18446744073709551615', '-9007199254740993']);
    assert.equal(j.a[2], 1.2345678901234567);
    assert.equal(j.s, 'x,12345678901234567,"1234567890123456789');
  });
});

describe('client-side checks', () => {
  it('rejects a bad tensor before anything is sent', async () => {
    const client = new DeskmlClient({ url: 'http://127.0.0.1:9', fetch: () => assert.fail('fetch was called') });
    const bad = { name: 'features', datatype: 'FP32', shape: [1, 30], data: new Float32Array(3) };
    await assert.rejects(() => client.infer('mlp', [bad]), (e) => e instanceof DeskmlError && e.status === undefined);
    await assert.rejects(() => client.infer('mlp', []), /at least one input/);
  });
});

describe('the browser entry', () => {
  it('imports nothing from Node (no node: modules, no ws, no Buffer or process)', () => {
    const seen = new Set();
    const visit = (file) => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = readFileSync(file, 'utf8');
      for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/g)) {
        const spec = m[1];
        assert.ok(spec.startsWith('./'), `${file} imports ${spec}`);
        visit(join(dirname(file), spec));
      }
      assert.doesNotMatch(code, /\bBuffer\.|\bprocess\.|require\(/, `${file} uses a Node global`);
    };
    visit(join(dist, 'index.js'));
    assert.ok(seen.size >= 5, `walked ${[...seen].join(', ')}`);
    assert.ok(![...seen].some((f) => f.endsWith('node.js')));
  });
});
