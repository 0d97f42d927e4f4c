// The HTTP client against a real `deskml serve --port 0` started here: JSON and binary inference
// (checked against the reference outputs of make models), every datatype through identity models,
// NDJSON and WebSocket streaming with cancel, errors, timeouts, the repository calls and the token.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DeskmlClient, DeskmlError, connect, readToken, spawnServer, tensor, tensorStrings } from '../dist/node.js';
import { readNpy } from '../../tools/ort/npy.mjs';
import { BINARY, CHAIN_SIZE, ECHO_TYPES, MLP, assertClose, makeRepository, missingPrerequisite, quietEnv } from './helpers.mjs';

const skip = missingPrerequisite();

describe('deskml serve over HTTP', { skip }, () => {
  let repo;
  let server;
  let client;
  let features; // the reference input of make models, [1, 30]
  let logits; // its reference output, [1, 2]

  before(async () => {
    repo = makeRepository();
    server = await spawnServer({ binary: BINARY, models: repo.dir, env: quietEnv });
    client = server.client;
    const x = readNpy(join(MLP, 'inputs', 'features.npy'));
    features = tensor('features', 'FP32', x.dims, x.data);
    logits = readNpy(join(MLP, 'outputs', 'logits.npy'));
  });

  after(async () => {
    if (server) assert.equal(await server.close(), 0, 'deskml serve exits 0 on SIGTERM');
    repo?.remove();
  });

  it('answers health and metadata calls', async () => {
    assert.equal(await client.live(), true);
    assert.equal(await client.ready(), true);
    const meta = await client.serverMetadata();
    assert.equal(meta.name, 'deskml');
    assert.ok(meta.extensions.includes('binary_tensor_data') && meta.extensions.includes('streaming'));
    const m = await client.modelMetadata('mlp');
    assert.deepEqual(m.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 30] }]);
    assert.deepEqual(m.outputs, [{ name: 'logits', datatype: 'FP32', shape: [-1, 2] }]);
    assert.equal(await client.modelReady('mlp'), true);
    assert.equal(await client.modelReady('mlp', { version: 1 }), true);
  });

  it('infers over JSON with the reference outputs, and binary gives the same typed tensors', async () => {
    const json = await client.infer('mlp', [features], { binary: false, id: 'j1' });
    assert.equal(json.id, 'j1');
    assert.equal(json.modelName, 'mlp');
    assert.equal(json.modelVersion, '1');
    const out = json.output('logits');
    assert.equal(out.datatype, 'FP32');
    assert.deepEqual(out.shape, logits.dims);
    assert.ok(out.data instanceof Float32Array);
    assertClose(assert, out.data, logits.data);

    const bin = await client.infer('mlp', [features]);
    assert.deepEqual(bin.output('logits'), out);
    assert.throws(() => bin.output('nope'), /no output 'nope' \(outputs: logits\)/);
  });

  it('infers a batch and selected outputs', async () => {
    const rows = 5;
    const data = new Float32Array(rows * 30);
    for (let r = 0; r < rows; r++) data.set(features.data, r * 30);
    const x = tensor('features', 'FP32', [rows, 30], data);
    for (const binary of [true, false]) {
      const r = await client.infer('mlp', [x], { binary, outputs: ['logits'], priority: 1, timeoutUs: 10_000_000 });
      assert.deepEqual(r.output('logits').shape, [rows, 2]);
      for (let i = 0; i < rows; i++) assertClose(assert, r.output('logits').data.subarray(i * 2, i * 2 + 2), logits.data);
    }
  });

  it('round-trips every datatype through identity models, JSON and binary alike', async () => {
    const values = {
      BOOL: [true, false, true, true, false, true],
      UINT8: [0, 1, 2, 127, 128, 255],
      INT8: [-128, -1, 0, 1, 2, 127],
      INT32: [-(2 ** 31), -1, 0, 1, 7, 2 ** 31 - 1],
      INT64: [-(2n ** 63n), -1n, 0n, 2n ** 53n + 1n, 7n, 2n ** 63n - 1n],
      UINT64: [0n, 1n, 2n ** 53n + 1n, 2n ** 63n, 7n, 2n ** 64n - 1n],
      FP16: [0, 1, -2, 0.5, 65504, 0.099975586],
      FP32: [0, 1.5, -2.25, 3.4e38, 1e-30, 0.1],
      FP64: [0, 1.5, -2.25, 1e300, 5e-324, 0.1],
      BYTES: ['héllo', '', 'a,12345678901234567,b', '"quoted"', 'x', 'y'],
    };
    for (const dt of ECHO_TYPES) {
      const x = tensor('x', dt, [2, 3], values[dt]);
      const model = `echo_${dt.toLowerCase()}`;
      const bin = (await client.infer(model, [x])).output('y');
      const json = (await client.infer(model, [x], { binary: false })).output('y');
      assert.deepEqual(bin, { ...x, name: 'y' }, `${dt} binary`);
      assert.deepEqual(json, bin, `${dt} JSON`);
    }
    const s = (await client.infer('echo_bytes', [tensor('x', 'BYTES', [1, 1], ['ünï'])], { binary: false })).output('y');
    assert.deepEqual(tensorStrings(s), ['ünï']);
  });

  it('streams NDJSON answers as they complete, item errors included', async () => {
    const items = Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, inputs: [features] }));
    items.push({ id: 'bad', inputs: [tensor('features', 'FP32', [1, 3], [1, 2, 3])] });
    const seen = new Map();
    const stream = client.inferStream('mlp', items);
    let step;
    while (!(step = await stream.next()).done) {
      const a = step.value;
      assert.ok(!seen.has(a.index), `index ${a.index} twice`);
      seen.set(a.index, a);
      assert.equal(a.progress.total, items.length);
      assert.equal(a.progress.done, seen.size);
    }
    assert.deepEqual(step.value, { total: 7, failed: 1 });
    assert.equal(seen.size, 7);
    for (let i = 0; i < 6; i++) {
      assert.equal(seen.get(i).id, `n${i}`);
      assertClose(assert, seen.get(i).result.output('logits').data, logits.data);
    }
    const bad = seen.get(6);
    assert.ok(bad.error instanceof DeskmlError);
    assert.match(bad.error.message, /shape/);
  });

  it('answers several WebSocket requests (token as the bearer subprotocol) and cancels by id', async () => {
    const ws = await client.stream();
    try {
      const answers = [];
      const reader = (async () => {
        for await (const a of ws.answers()) {
          answers.push(a);
          if (answers.length === 10) break;
        }
      })();
      const results = await Promise.all([1, 2, 3, 4].map((i) => ws.infer('mlp', [features], { id: `w${i}` })));
      for (const r of results) assertClose(assert, r.output('logits').data, logits.data);
      assert.deepEqual(results.map((r) => r.id), ['w1', 'w2', 'w3', 'w4']);

      // Slow requests, then four more with one id, cancelled at once. How many runs go side by
      // side depends on the thread budget and the models loaded, and a request already running
      // cannot be cancelled, so at least the last ones are queued and answered with an error.
      // The blockers are big (each runs for tens of ms), the victims small, so the victims and
      // the cancel are read while a blocker still runs: reading a big request's JSON takes
      // longer than running a small one.
      const side = 2 * CHAIN_SIZE;
      const big = tensor('x', 'FP32', [side, side], new Float32Array(side * side));
      const small = tensor('x', 'FP32', [16, 16], new Float32Array(16 * 16));
      const blockers = [ws.send('chain', [big], { id: 'blocker' }), ws.send('chain', [big], { id: 'blocker' })];
      const victims = [1, 2, 3, 4].map(() => ws.send('chain', [small], { id: 'victim' }));
      assert.equal(ws.inFlight, 6);
      ws.cancel('victim');
      const settled = await Promise.allSettled(victims.map((v) => v.result));
      const cancelled = settled.filter((r) => r.status === 'rejected');
      assert.ok(cancelled.length >= 1, 'at least one queued request was cancelled');
      for (const r of cancelled) assert.ok(r.reason instanceof DeskmlError && /cancel/i.test(r.reason.message), r.reason.message);
      assert.ok(settled.at(-1).status === 'rejected', 'the last one was still queued');
      for (const b of blockers) assert.deepEqual((await b.result).output('y').shape, [side, side]);
      await reader;
      assert.equal(answers.length, 10);
      assert.deepEqual(answers.filter((a) => a.id === 'victim' && a.error).length, cancelled.length);

      // A bad request is answered with an error; the connection stays usable.
      await assert.rejects(ws.infer('nope', [features]), DeskmlError);
      assert.ok(await ws.infer('mlp', [features]));
    } finally {
      ws.close();
    }
  });

  it('rejects what is unanswered when the WebSocket is closed', async () => {
    const ws = await client.stream();
    const big = tensor('x', 'FP32', [CHAIN_SIZE, CHAIN_SIZE], new Float32Array(CHAIN_SIZE * CHAIN_SIZE));
    const p = ws.infer('chain', [big]);
    ws.close();
    await assert.rejects(p, /closed/);
    assert.throws(() => ws.send('mlp', [features]), /closed/);
  });

  it('refuses a wrong token with DeskmlError 401, over HTTP and WebSocket', async () => {
    const bad = connect({ url: server.url, token: 'not-the-token' });
    await assert.rejects(bad.infer('mlp', [features]), (e) =>
      e instanceof DeskmlError && e.status === 401 && /token/.test(e.message));
    await assert.rejects(bad.modelMetadata('mlp'), (e) => e.status === 401);
    await assert.rejects(bad.stream(), (e) => e instanceof DeskmlError && e.status === 401);
    assert.equal(await bad.live(), true, 'health needs no token');
  });

  it('reports an unknown model as 404 and a wrong shape as 400', async () => {
    await assert.rejects(client.infer('nope', [features]), (e) =>
      e instanceof DeskmlError && e.status === 404 && /nope/.test(e.message));
    await assert.rejects(client.modelMetadata('nope'), (e) => e.status === 404);
    await assert.rejects(client.infer('mlp', [tensor('features', 'FP32', [1, 3], [1, 2, 3])]), (e) =>
      e.status === 400 && /shape/.test(e.message));
    const short = { name: 'features', datatype: 'FP32', shape: [1, 30], data: new Float32Array(29) };
    await assert.rejects(client.infer('mlp', [short]), (e) =>
      e instanceof DeskmlError && e.status === undefined, 'a bad shape is refused before sending');
  });

  it('times out, and aborts with an AbortSignal', async () => {
    const big = tensor('x', 'FP32', [CHAIN_SIZE, CHAIN_SIZE], new Float32Array(CHAIN_SIZE * CHAIN_SIZE));
    await assert.rejects(client.infer('chain', [big], { timeoutMs: 5 }), (e) =>
      e instanceof DeskmlError && /timed out after 5 ms/.test(e.message));
    const ac = new AbortController();
    const p = client.infer('chain', [big], { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, (e) => e instanceof DeskmlError && /aborted/.test(e.message));
    // A deadline passed on the server: 504.
    const slow = client.infer('chain', [big], { id: 'slow' });
    await assert.rejects(client.infer('chain', [big], { timeoutUs: 1 }), (e) => e.status === 504);
    await slow;
  });

  it('lists, unloads and loads models, and reports stats and metrics', async () => {
    const index = await client.repositoryIndex();
    assert.ok(index.some((e) => e.name === 'mlp' && e.state === 'READY'));
    await client.unload('mlp');
    assert.equal(await client.modelReady('mlp'), false);
    assert.ok(!(await client.repositoryIndex({ ready: true })).some((e) => e.name === 'mlp'));
    await client.load('mlp');
    assert.equal(await client.modelReady('mlp'), true);
    await client.infer('mlp', [features]);
    const stats = await client.stats('mlp');
    assert.equal(stats.model_stats[0].name, 'mlp');
    assert.ok(stats.model_stats[0].inference_count >= 1);
    assert.match(await client.metrics(), /deskml_/);
  });

  it('reads the token from token_file and from DESKML_TOKEN', async () => {
    assert.ok(server.ready.token_file, 'a generated token is written to a file');
    assert.equal(readToken({ tokenFile: server.ready.token_file }), server.token);
    const viaFile = connect({ url: server.url, tokenFile: server.ready.token_file });
    assert.ok(await viaFile.serverMetadata());
    const viaEnv = connect({ url: server.url, env: { DESKML_TOKEN: server.token } });
    assert.equal(viaEnv.token, server.token);
    assertClose(assert, (await viaEnv.infer('mlp', [features])).output('logits').data, logits.data);
    assert.throws(() => readToken({ tokenFile: join(repo.dir, 'missing.token') }), DeskmlError);
    // The browser entry's client takes the token as given.
    const plain = new DeskmlClient({ url: server.url, token: readToken({ tokenFile: server.ready.token_file }) });
    assert.equal((await plain.serverMetadata()).name, 'deskml');
  });
});

describe('spawnServer', { skip }, () => {
  it('fails clearly when deskml cannot start or exits early', async () => {
    await assert.rejects(spawnServer({ binary: join(repoRootless(), 'no-such-deskml'), models: '/nonexistent' }),
      /could not start/);
    await assert.rejects(spawnServer({ binary: BINARY, models: '/nonexistent/models', env: quietEnv }),
      /exited \(code [1-9]/);
  });
});

function repoRootless() {
  return '/nonexistent-dir';
}
