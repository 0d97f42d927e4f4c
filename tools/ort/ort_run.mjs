#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime (CPU execution provider): the reference peer deskml is checked
// and timed against.
//
//   node tools/ort/ort_run.mjs MODEL --input NAME=FILE.npy ... --output-dir DIR [--threads N]
//       runs once and writes each output as DIR/<name>.npy (characters outside [A-Za-z0-9_.-] become _)
//   node tools/ort/ort_run.mjs MODEL [--input ...] --bench [--iters 20] [--warmup 3] [--threads N] [--json]
//       times it like `deskml bench`: load_ms is session creation + first run, the first run counts as
//       one of the warm-up runs, inputs not given are synthesised from the declared types.
//
// Other options: --batch N (first symbolic dim of synthesised inputs), --opt-level
// disabled|basic|extended|all (default all), --no-spin (ORT's intra-op threads sleep instead of
// spin-waiting). Errors go to stderr with exit status 1 (2 for bad arguments).

import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { readNpy, writeNpy } from './npy.mjs';

const require = createRequire(import.meta.url);

// VmHWM, this process's resident high-water mark, as deskml's own bench reads it.
// Not resourceUsage().maxRSS (getrusage): that survives exec, so it would count
// the pages of the benchmark driver that started this process.
function peakRssMb() {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024; // both in KiB
}

class UsageError extends Error {}

const USAGE = `usage: ort_run.mjs MODEL --input NAME=FILE.npy ... (--output-dir DIR | --bench [--iters N] [--warmup N] [--json])
                  [--threads N] [--batch N] [--opt-level disabled|basic|extended|all] [--no-spin]`;

function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        input: { type: 'string', short: 'i', multiple: true, default: [] },
        'output-dir': { type: 'string', short: 'o' },
        threads: { type: 'string', default: '0' },
        bench: { type: 'boolean', default: false },
        iters: { type: 'string', default: '20' },
        warmup: { type: 'string', default: '3' },
        batch: { type: 'string', default: '1' },
        json: { type: 'boolean', default: false },
        'opt-level': { type: 'string', default: 'all' },
        'no-spin': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  if (positionals.length !== 1) throw new UsageError('expected exactly one MODEL argument');
  const int = (name, min) => {
    const v = values[name];
    if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} expects an integer >= ${min}, got '${v}'`);
    return Number(v);
  };
  const opts = {
    model: positionals[0],
    inputs: values.input.map((spec) => {
      const eq = spec.indexOf('=');
      if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`--input expects NAME=FILE.npy, got '${spec}'`);
      return { name: spec.slice(0, eq), file: spec.slice(eq + 1) };
    }),
    outputDir: values['output-dir'],
    threads: int('threads', 0),
    bench: values.bench,
    iters: int('iters', 1),
    warmup: int('warmup', 1),
    batch: int('batch', 1),
    json: values.json,
    optLevel: values['opt-level'],
    spin: !values['no-spin'],
  };
  if (!['disabled', 'basic', 'extended', 'all'].includes(opts.optLevel)) {
    throw new UsageError(`--opt-level must be disabled, basic, extended or all, got '${opts.optLevel}'`);
  }
  if (!opts.bench && !opts.outputDir) throw new UsageError('--output-dir is required (unless --bench)');
  return opts;
}

export function sanitizeName(name) {
  // The same rule as `deskml run`, so both write the same file names.
  const s = name.replace(/[^A-Za-z0-9_.-]/g, '_');
  return s === '' || s === '.' || s === '..' ? '_' + s : s;
}

// A small seeded generator (mulberry32) so synthesised bench inputs are the same on every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ZERO_ARRAYS = {
  float16: (n) => new Uint16Array(n),
  int8: (n) => new Int8Array(n),
  uint8: (n) => new Uint8Array(n),
  int16: (n) => new Int16Array(n),
  uint16: (n) => new Uint16Array(n),
  uint32: (n) => new Uint32Array(n),
  uint64: (n) => new BigUint64Array(n),
};

// Mirrors deskml bench: the first symbolic dim is the batch, a symbolic dim 1 is 128, others are 1;
// floats are N(0,1), integers uniform in [0, 99], anything else zeros.
function synthesize(ort, meta, batch, next) {
  if (!meta.isTensor || meta.shape === undefined) throw new Error(`input '${meta.name}' has no declared tensor shape; pass --input`);
  let first = true;
  const dims = meta.shape.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    const v = first ? batch : i === 1 ? 128 : 1;
    first = false;
    return v;
  });
  const n = dims.reduce((a, b) => a * b, 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  switch (meta.type) {
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from({ length: n }, normal), dims);
    case 'float64':
      return new ort.Tensor('float64', Float64Array.from({ length: n }, normal), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 100))), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(next() * 100)), dims);
    case 'bool':
      return new ort.Tensor('bool', new Uint8Array(n), dims);
    default: {
      const zeros = ZERO_ARRAYS[meta.type];
      if (!zeros) throw new Error(`cannot synthesise input '${meta.name}' of type ${meta.type}; pass --input`);
      return new ort.Tensor(meta.type, zeros(n), dims);
    }
  }
}

function loadFeeds(ort, session, opts) {
  const known = new Set(session.inputNames);
  const feeds = {};
  for (const { name, file } of opts.inputs) {
    if (!known.has(name)) throw new Error(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    const { type, dims, data } = readNpy(file);
    feeds[name] = new ort.Tensor(type, data, dims);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) {
    if (!opts.bench) throw new Error(`missing --input for ${missing.join(', ')}`);
    const next = rng(42);
    const metaByName = new Map((session.inputMetadata ?? []).map((m) => [m.name, m]));
    for (const name of missing) {
      const meta = metaByName.get(name);
      if (!meta) throw new Error(`no metadata for input '${name}'; pass --input`);
      feeds[name] = synthesize(ort, meta, opts.batch, next);
    }
  }
  return feeds;
}

function writeOutputs(results, session, dir) {
  mkdirSync(dir, { recursive: true });
  const written = new Set();
  for (const name of session.outputNames) {
    const value = results[name];
    if (!value || value.dims === undefined || value.type === undefined) {
      throw new Error(`output '${name}' is not a tensor; only tensors can be written as .npy`);
    }
    const file = sanitizeName(name) + '.npy';
    if (written.has(file)) throw new Error(`two outputs sanitise to the same file name '${file}'`);
    written.add(file);
    writeNpy(join(dir, file), value.type, value.dims, value.data);
  }
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function main() {
  const opts = parseCommandLine(process.argv.slice(2));
  const ort = require('onnxruntime-node');
  const sessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: opts.optLevel,
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: opts.spin ? '1' : '0' } } },
  };
  const loadStart = nowMs();
  const session = await ort.InferenceSession.create(opts.model, sessionOptions);
  const feeds = loadFeeds(ort, session, opts);
  const first = await session.run(feeds);
  const loadMs = nowMs() - loadStart;
  if (opts.outputDir) writeOutputs(first, session, opts.outputDir);

  if (opts.bench) {
    for (let i = 1; i < opts.warmup; ++i) await session.run(feeds);
    const times = [];
    for (let i = 0; i < opts.iters; ++i) {
      const t0 = nowMs();
      await session.run(feeds);
      times.push(nowMs() - t0);
    }
    times.sort((a, b) => a - b);
    const pct = (p) => times[Math.min(times.length - 1, Math.floor(p * (times.length - 1) + 0.5))];
    const median = pct(0.5);
    const report = {
      model: opts.model,
      runtime: `onnxruntime-node ${ort.env.versions?.node ?? ''}`.trim(),
      batch: opts.batch,
      threads: opts.threads,
      iters: opts.iters,
      median_ms: median,
      p90_ms: pct(0.9),
      min_ms: times[0],
      items_per_s: (opts.batch * 1000) / median,
      load_ms: loadMs,
      peak_rss_mb: peakRssMb(),
    };
    if (opts.json) {
      process.stdout.write(JSON.stringify(report) + '\n');
    } else {
      const f = (x) => x.toFixed(3);
      process.stdout.write(
        `model        ${report.model}\nruntime      ${report.runtime}   threads ${opts.threads || 'default'}   iters ${opts.iters}\n` +
          `median       ${f(report.median_ms)} ms\np90          ${f(report.p90_ms)} ms\nmin          ${f(report.min_ms)} ms\n` +
          `throughput   ${report.items_per_s.toFixed(1)} items/s\nload         ${report.load_ms.toFixed(1)} ms (file to first result)\n` +
          `peak RSS     ${report.peak_rss_mb.toFixed(1)} MiB\n`,
      );
    }
  }
  await session.release();
}

main().catch((e) => {
  process.stderr.write(`ort_run: ${e instanceof UsageError ? e.message + '\n' + USAGE : e?.message ?? e}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
