// Shared by the tests: where the deskml binary and the reference models are, a temporary model
// repository, and a server started for a test file.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { identityModel, matmulChainModel } from './onnx.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
/** The deskml executable: $DESKML_BINARY (CTest passes the built target), else build/bin/deskml. */
export const BINARY = process.env.DESKML_BINARY ?? join(ROOT, 'build', 'bin', 'deskml');
/** The reference models from `make models`: $DESKML_MODELS, else build/models. */
export const MODELS = process.env.DESKML_MODELS ?? join(ROOT, 'build', 'models');
export const MLP = join(MODELS, 'mlp');

/** Why the server tests cannot run here, or undefined. */
export function missingPrerequisite() {
  if (!existsSync(BINARY)) return `${BINARY} is missing: build deskml first (make build)`;
  if (!existsSync(join(MLP, 'model.onnx'))) return `${MLP}/model.onnx is missing: run make models`;
  return undefined;
}

/** Identity models of these datatypes, served as echo_<datatype in lower case>. */
export const ECHO_TYPES = ['BOOL', 'UINT8', 'INT8', 'INT32', 'INT64', 'UINT64', 'FP16', 'FP32', 'FP64', 'BYTES'];

/** Rows (and columns) of the square input the `chain` model is given in the tests. */
export const CHAIN_SIZE = 320;

/** A temporary repository: mlp/1 (the reference MLP), the echo models and `chain` (a slow
 *  model: 24 chained MatMuls). Returns { dir, remove }. */
export function makeRepository() {
  const dir = mkdtempSync(join(tmpdir(), 'deskml-js-'));
  try {
    fillRepository(dir);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function fillRepository(dir) {
  mkdirSync(join(dir, 'mlp', '1'), { recursive: true });
  copyFileSync(join(MLP, 'model.onnx'), join(dir, 'mlp', '1', 'model.onnx'));
  for (const dt of ECHO_TYPES) {
    const folder = join(dir, `echo_${dt.toLowerCase()}`, '1');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'model.onnx'), identityModel(dt, 2));
  }
  mkdirSync(join(dir, 'chain', '1'), { recursive: true });
  writeFileSync(join(dir, 'chain', '1', 'model.onnx'), matmulChainModel(24));
}

/** Checks |a - b| <= atol + rtol * |b| element-wise. */
export function assertClose(assert, actual, expected, { rtol = 1e-3, atol = 1e-4 } = {}) {
  assert.equal(actual.length, expected.length, 'element count');
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const b = Number(expected[i]);
    assert.ok(Math.abs(a - b) <= atol + rtol * Math.abs(b), `element ${i}: ${a} vs ${b}`);
  }
}

export const quietEnv = { ...process.env, DESKML_LOG_LEVEL: 'warn' };
