// The stdio sidecar (deskml serve --stdio) through Sidecar: the same numbers as HTTP, every method,
// JSON-RPC errors, concurrent calls, and what happens to waiting calls when the process exits.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DeskmlError, RpcErrorCode, Sidecar, spawnServer, tensor } from '../dist/node.js';
import { readNpy } from '../../tools/ort/npy.mjs';
import { BINARY, CHAIN_SIZE, MLP, assertClose, makeRepository, missingPrerequisite, quietEnv } from './helpers.mjs';

const skip = missingPrerequisite();

describe('deskml serve --stdio', { skip }, () => {
  let repo;
  let sidecar;
  let features;
  let logits;

  before(() => {
    repo = makeRepository();
    sidecar = Sidecar.spawn({ binary: BINARY, models: repo.dir, env: quietEnv });
    const x = readNpy(join(MLP, 'inputs', 'features.npy'));
    features = tensor('features', 'FP32', x.dims, x.data);
    logits = readNpy(join(MLP, 'outputs', 'logits.npy'));
  });

  after(async () => {
    if (sidecar) assert.equal(await sidecar.close(), 0, 'deskml exits 0 at end of input');
    repo?.remove();
  });

  it('answers the management methods', async () => {
    assert.deepEqual(await sidecar.health(), { live: true, ready: true });
    assert.equal((await sidecar.serverMetadata()).name, 'deskml');
    const m = await sidecar.modelMetadata('mlp');
    assert.deepEqual(m.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 30] }]);
    await sidecar.load('mlp');
    assert.equal(await sidecar.modelReady('mlp'), true);
    assert.ok((await sidecar.repositoryIndex({ ready: true })).some((e) => e.name === 'mlp'));
    await sidecar.unload('mlp');
    assert.equal(await sidecar.modelReady('mlp'), false);
    await sidecar.load('mlp');
    assert.match(await sidecar.metrics(), /deskml_/);
  });

  it('infers the same numbers as HTTP, base64 and JSON alike', async () => {
    const server = await spawnServer({ binary: BINARY, models: repo.dir, env: quietEnv });
    try {
      const http = (await server.client.infer('mlp', [features])).output('logits');
      const b64 = await sidecar.infer('mlp', [features], { id: 's1' });
      assert.equal(b64.id, 's1');
      assert.equal(b64.modelName, 'mlp');
      assert.deepEqual(b64.output('logits'), http);
      assert.deepEqual((await sidecar.infer('mlp', [features], { binary: false })).output('logits'), http);
      assertClose(assert, http.data, logits.data);
    } finally {
      assert.equal(await server.close(), 0);
    }
    // 64-bit integers stay exact both ways.
    const big = tensor('x', 'INT64', [1, 2], [2n ** 53n + 1n, -(2n ** 63n)]);
    for (const binary of [true, false]) {
      assert.deepEqual((await sidecar.infer('echo_int64', [big], { binary })).output('y').data, big.data);
    }
    assert.ok((await sidecar.stats('mlp')).model_stats[0].inference_count >= 2);
  });

  it('matches concurrent answers to their calls by id', async () => {
    const rows = Array.from({ length: 16 }, (_, i) =>
      tensor('features', 'FP32', [1, 30], Float32Array.from(features.data, (v) => v * (1 + i / 8))));
    const answers = await Promise.all(rows.map((x) => sidecar.infer('mlp', [x])));
    const again = await Promise.all(rows.map((x) => sidecar.infer('mlp', [x], { binary: false })));
    for (let i = 0; i < rows.length; i++) assert.deepEqual(answers[i].output('logits'), again[i].output('logits'));
    assert.notDeepEqual(answers[0].output('logits').data, answers[15].output('logits').data);
    assert.equal(sidecar.inFlight, 0);
  });

  it('turns JSON-RPC errors into DeskmlError with the code and status name', async () => {
    await assert.rejects(sidecar.infer('nope', [features]), (e) =>
      e instanceof DeskmlError && e.code === RpcErrorCode.NotFound && e.statusName === 'NotFound' && /nope/.test(e.message));
    await assert.rejects(sidecar.infer('mlp', [tensor('features', 'FP32', [1, 3], [1, 2, 3])]), (e) =>
      e.code === RpcErrorCode.InvalidParams && /shape/.test(e.message));
    await assert.rejects(sidecar.call('no_such_method'), (e) => e.code === RpcErrorCode.MethodNotFound);
    const short = { name: 'features', datatype: 'FP32', shape: [1, 30], data: new Float32Array(3) };
    await assert.rejects(sidecar.infer('mlp', [short]), (e) => e instanceof DeskmlError && e.code === undefined);
  });
});

describe('Sidecar process lifetime', { skip }, () => {
  let repo;
  before(() => {
    repo = makeRepository();
  });
  after(() => repo?.remove());

  it('rejects every waiting call when deskml exits, and later calls at once', async () => {
    const sc = Sidecar.spawn({ binary: BINARY, models: repo.dir, env: quietEnv });
    // Twice the usual side: 8x the work, so each inference outlasts the 20 ms
    // before the kill (at the usual size one takes about 4 ms on a 2-core EPYC).
    const side = 2 * CHAIN_SIZE;
    const big = tensor('x', 'FP32', [side, side], new Float32Array(side * side));
    await sc.load('chain');
    const waiting = [sc.infer('chain', [big]), sc.infer('chain', [big]), sc.health()];
    // health may be answered before the kill lands; the inferences cannot be.
    await new Promise((r) => setTimeout(r, 20));
    sc.process.kill('SIGKILL');
    const settled = await Promise.allSettled(waiting);
    for (const r of settled.slice(0, 2)) {
      assert.equal(r.status, 'rejected');
      assert.ok(r.reason instanceof DeskmlError);
      assert.match(r.reason.message, /^infer: the deskml sidecar exited \(code null, signal SIGKILL\)/);
    }
    await assert.rejects(sc.health(), /sidecar exited/);
    assert.equal((await sc.exited).signal, 'SIGKILL');
  });

  it('answers what was sent before stdin closes, then exits 0', async () => {
    const sc = Sidecar.spawn({ binary: BINARY, models: repo.dir, env: quietEnv });
    const x = tensor('features', 'FP32', [1, 30], new Float32Array(30));
    const p = sc.infer('mlp', [x]);
    const code = sc.close();
    assert.deepEqual((await p).output('logits').shape, [1, 2]);
    assert.equal(await code, 0);
  });

  it('reports a binary that cannot start', async () => {
    const sc = Sidecar.spawn({ binary: '/nonexistent/deskml', models: repo.dir });
    await assert.rejects(sc.health(), /could not start/);
  });

  it('times out and aborts calls on its side', async () => {
    const sc = Sidecar.spawn({ binary: BINARY, models: repo.dir, env: quietEnv });
    try {
      const big = tensor('x', 'FP32', [CHAIN_SIZE, CHAIN_SIZE], new Float32Array(CHAIN_SIZE * CHAIN_SIZE));
      await assert.rejects(sc.infer('chain', [big], { timeoutMs: 1 }), /timed out after 1 ms/);
      const ac = new AbortController();
      const p = sc.infer('chain', [big], { signal: ac.signal });
      ac.abort();
      await assert.rejects(p, /aborted/);
      assert.equal(sc.inFlight, 0);
      assert.deepEqual(await sc.health(), { live: true, ready: true });
    } finally {
      assert.equal(await sc.close(), 0);
    }
  });
});
