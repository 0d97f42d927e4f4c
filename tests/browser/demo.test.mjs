// The demo page (web/demo) in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Starts `deskml serve --ui web/demo` on a repository holding the trained
// digits model, opens the page with the token in the URL fragment, draws digits with the mouse
// and checks the predictions, classifies an image when an image model is at hand, and saves a
// screenshot.
//
//   node --test tests/browser/demo.test.mjs
//
// Environment (CTest's browser_demo sets them from the build): DESKML (the binary), DESKML_MODELS
// (the generated models: digits, optionally squeezenet1_1), DESKML_UI (web/demo), DESKML_TEST_OUTPUT
// (where demo.png goes), CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const DESKML = process.env.DESKML || path.join(root, "build/bin/deskml");
const MODELS = process.env.DESKML_MODELS || path.join(root, "build/models");
const UI = process.env.DESKML_UI || path.join(root, "web/demo");
const OUT = process.env.DESKML_TEST_OUTPUT || path.join(root, "build/test-output");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const IMAGE_MODEL = "squeezenet1_1";

let repo, server, serverLog = "", ready, browser, page;
const pageErrors = [];

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(DESKML, ["serve", "--models", repo, "--ui", UI, "--port", "0", "--threads", "2"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DESKML_LOG_LEVEL: "warn", DESKML_TOKEN: "" },
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`no ready line from deskml serve:\n${serverLog}`)), 60_000);
    server.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0 && !ready) {
        clearTimeout(timer);
        ready = JSON.parse(out.slice(0, nl));
        resolve();
      }
    });
    server.stderr.on("data", (d) => (serverLog += d));
    server.on("exit", (code) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`deskml serve exited (${code}):\n${serverLog}`));
    });
  });
}

before(async () => {
  for (const f of [DESKML, path.join(MODELS, "digits/model.onnx"), path.join(UI, "index.html"), CHROMIUM]) {
    assert.ok(fs.existsSync(f), `missing ${f} (make build, make models, scripts/setup)`);
  }
  repo = fs.mkdtempSync(path.join(os.tmpdir(), "deskml-demo-"));
  for (const name of ["digits", IMAGE_MODEL]) {
    const src = path.join(MODELS, name, "model.onnx");
    if (!fs.existsSync(src)) continue;
    fs.mkdirSync(path.join(repo, name, "1"), { recursive: true });
    fs.copyFileSync(src, path.join(repo, name, "1", "model.onnx"));
  }
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox cannot start as root (CI containers).
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 760 }, deviceScaleFactor: 1 });
  page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (repo) fs.rmSync(repo, { recursive: true, force: true });
});

// A stroke through `points` (in the pad's 280x280 CSS pixels), as a mouse draws it.
async function stroke(points) {
  const box = await page.locator("#pad").boundingBox();
  const at = ([x, y]) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 4 });
  await page.mouse.up();
}

const ellipse = (cx, cy, rx, ry, n = 40) =>
  Array.from({ length: n + 3 }, (_, i) => {
    const t = (2 * Math.PI * i) / n;
    return [cx + rx * Math.sin(t), cy - ry * Math.cos(t)];
  });

const DIGITS = [
  { digit: 7, strokes: [[[80, 50], [205, 50], [120, 235]]] },
  { digit: 1, strokes: [[[140, 40], [140, 240]]] },
  { digit: 0, strokes: [ellipse(140, 140, 58, 98)] },
];

async function prediction() {
  await page.waitForSelector('#digit-prediction[data-final="true"]', { timeout: 15_000 });
  return page.locator("#digit-prediction").textContent();
}

test("the page loads without a token and connects with the one in its fragment", async () => {
  await page.goto(`http://127.0.0.1:${ready.port}/#token=${ready.token}`);
  assert.equal(await page.title(), "deskml demo");
  await page.waitForSelector('#state[data-state="open"]', { timeout: 15_000 });
  assert.equal(await page.locator("#state").textContent(), "connected");
});

test("drawn digits are predicted correctly", async () => {
  for (const { digit, strokes } of DIGITS) {
    await page.click("#clear");
    assert.equal(await page.locator("#digit-prediction").textContent(), "–");
    for (const s of strokes) await stroke(s);
    const got = await prediction();
    const confidence = await page.locator("#digit-confidence").textContent();
    assert.equal(got, String(digit), `drew a ${digit}, the page predicted ${got} (${confidence})`);
    assert.match(await page.locator("#digit-latency").textContent(), /^\d+(\.\d)? ms$/);
  }
});

test("an image is classified by an image model, with top 5 and latency", async (t) => {
  if (!fs.existsSync(path.join(repo, IMAGE_MODEL))) return t.skip(`no ${IMAGE_MODEL} in ${MODELS}`);
  await page.waitForFunction((m) => [...document.querySelectorAll("#image-model option")].some((o) => o.value === m),
    IMAGE_MODEL, { timeout: 60_000 });
  await page.selectOption("#image-model", IMAGE_MODEL);
  // A picture made in the page: a sunset-coloured gradient with a disc.
  const png = await page.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = 320;
    c.height = 240;
    const ctx = c.getContext("2d");
    const g = ctx.createLinearGradient(0, 0, 0, 240);
    g.addColorStop(0, "#1c7ed6");
    g.addColorStop(1, "#ffa94d");
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, 320, 240);
    ctx.fillStyle = "#ffe066";
    ctx.beginPath();
    ctx.arc(200, 150, 50, 0, 2 * Math.PI);
    ctx.fill();
    return c.toDataURL("image/png").split(",")[1];
  });
  await page.setInputFiles("#file", { name: "sunset.png", mimeType: "image/png", buffer: Buffer.from(png, "base64") });
  const result = page.locator("#images li .top5").first();
  await result.filter({ hasText: "top 5" }).waitFor({ timeout: 60_000 });
  const text = await result.textContent();
  assert.match(text, new RegExp(`${IMAGE_MODEL} · \\d+(\\.\\d)? ms · top 5: (#\\d+ \\d+\\.\\d%(, )?){5}`));
});

test("screenshot of the demo with a correct prediction", async () => {
  // The last digit drawn (a 0) is still on the pad and its prediction shown.
  assert.equal(await page.locator("#digit-prediction").textContent(), "0");
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, "demo.png");
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 10_000);
  console.log(`screenshot: ${file}`);
  assert.deepEqual(pageErrors, []);
});
