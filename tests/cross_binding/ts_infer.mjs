// The TypeScript leg of the cross-binding test: the MLP's logits through the built package over
// binary HTTP, JSON HTTP, NDJSON streaming, the WebSocket and the stdio sidecar. Prints one JSON
// object {transport: hex of the float32 bytes}.
// Usage: node ts_infer.mjs JS_DIST URL TOKEN INPUT.f32 ROWS COLS MODELS_REPOSITORY DESKML_BINARY
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, url, token, input, rows, cols, repository, binary] = process.argv.slice(2);
const { connect, Sidecar, tensor } = await import(pathToFileURL(join(dist, 'node.js')).href);

const bytes = readFileSync(input);
const x = tensor('features', 'FP32', [Number(rows), Number(cols)],
  new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
const hex = (result) => {
  const data = result.output('logits').data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
};

const client = connect({ url, token });
const answers = {};
answers['HTTP binary'] = hex(await client.infer('mlp', [x]));
answers['HTTP JSON'] = hex(await client.infer('mlp', [x], { binary: false }));
for await (const item of client.inferStream('mlp', [{ inputs: [x] }])) answers['NDJSON stream'] = hex(item.result);
const ws = await client.stream();
try {
  answers.WebSocket = hex(await ws.infer('mlp', [x]));
} finally {
  ws.close();
}
const sidecar = await Sidecar.spawn({ models: repository, binary });
try {
  answers['stdio sidecar'] = hex(await sidecar.infer('mlp', [x]));
} finally {
  await sidecar.close();
}
console.log(JSON.stringify(answers));
