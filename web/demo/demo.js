// The deskml demo page: draw a digit or drop images, predictions stream back over the
// WebSocket /v2/stream (docs/SERVER.md). No build step, nothing loaded from elsewhere.
//
// The token comes from the URL fragment (#token=..., never sent to a server) or the field.
"use strict";

const DIGITS_MODEL = "digits";
const FRAME = 32; // sklearn's digits: a 32x32 bitmap ...
const BLOCK = 4; // ... whose ink is counted per 4x4 block: 8x8 values, 0..16
const PEN = 4; // pen width in frame pixels (tests/models/train_digits.py draws the same)
const SUPER = 8; // supersampling of the frame, for a smooth ink coverage
const SEND_EVERY_MS = 60; // while drawing, at most one digit request per this long
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

const $ = (id) => document.getElementById(id);
const stateEl = $("state");
const errorEl = $("error");

// ---- connection ------------------------------------------------------------------------

let token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
let ws = null;
let retryMs = 500;
let retryTimer = null;
let nextId = 1;
const pending = new Map(); // id -> {sent, resolve, reject}

function setState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text;
}

function showError(message) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${(json && json.error) || text}`);
  return json;
}

function connect() {
  clearTimeout(retryTimer);
  if (ws) {
    ws.onclose = null;
    ws.close();
  }
  if (!token) {
    setState("idle", "no token");
    showError("Open this page with #token=<token> from deskml serve's ready line (make run prints the URL), " +
      "or paste the token above.");
    return;
  }
  setState("connecting", "connecting…");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const sock = new WebSocket(`${scheme}://${location.host}/v2/stream`, [`bearer.${token}`]);
  ws = sock;
  sock.onopen = () => {
    retryMs = 500;
    setState("open", "connected");
    showError("");
    loadModels();
    if (strokes.length) sendDigit(true);
  };
  sock.onmessage = (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return showError("the server sent a message that is not JSON");
    }
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    const ms = performance.now() - p.sent;
    if (msg.error) p.reject(new Error(msg.error));
    else p.resolve({ msg, ms });
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    for (const p of pending.values()) p.reject(new Error("the connection closed"));
    pending.clear();
    digitInFlight = false;
    // A refused upgrade (wrong token, foreign origin) closes with 1006 before opening.
    setState("closed", `disconnected (${ev.code}), retrying…`);
    if (ev.code === 1006) showError("Cannot connect to /v2/stream: is deskml serve running, and is the token right?");
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 8000);
  };
}

function infer(model, inputs) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    const id = String(nextId++);
    pending.set(id, { sent: performance.now(), resolve, reject });
    ws.send(JSON.stringify({ id, model, inputs }));
  });
}

$("token").value = token;
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  connect();
});

// ---- models ----------------------------------------------------------------------------

let digitInput = "pixels";
let imageModels = []; // [{name, input}]

async function loadModels() {
  try {
    const index = await api("POST", "/v2/repository/index", {});
    const names = index.map((m) => m.name);
    if (!names.includes(DIGITS_MODEL)) {
      showError(`The repository has no "${DIGITS_MODEL}" model (tests/models/train_digits.py makes it).`);
    } else {
      const meta = await api("GET", `/v2/models/${DIGITS_MODEL}`);
      digitInput = meta.inputs[0].name;
    }
    // Image classifiers: a float input [N, 3, 224, 224]. Metadata loads each model.
    const found = [];
    for (const name of names.filter((n) => n !== DIGITS_MODEL)) {
      try {
        const meta = await api("GET", `/v2/models/${name}`);
        const inp = meta.inputs.length === 1 ? meta.inputs[0] : null;
        if (inp && inp.datatype === "FP32" && inp.shape.length === 4 && inp.shape.slice(1).join() === "3,224,224") {
          found.push({ name, input: inp.name });
        }
      } catch {
        /* a model that does not load is not offered */
      }
    }
    imageModels = found;
    const select = $("image-model");
    const chosen = select.value;
    select.replaceChildren(...found.map((m) => new Option(m.name, m.name)));
    if (!found.length) select.append(new Option("no image model", ""));
    select.disabled = !found.length;
    if (found.some((m) => m.name === chosen)) select.value = chosen;
  } catch (e) {
    showError(String(e.message || e));
  }
}

// ---- the drawing pad -------------------------------------------------------------------

const pad = $("pad");
const padCtx = pad.getContext("2d");
let strokes = []; // arrays of [x, y] in CSS pixels
let drawing = null;
let lastSend = 0;
let sendTimer = null;
let digitInFlight = false;
let digitDirty = false; // drawn since the request in flight was sent
let digitFinalWanted = false;
let generation = 0; // bumped by Clear: answers for an earlier drawing are dropped

function sizePad() {
  const dpr = window.devicePixelRatio || 1;
  const rect = pad.getBoundingClientRect();
  pad.width = Math.round(rect.width * dpr);
  pad.height = Math.round(rect.height * dpr);
  padCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
  redraw();
}

function redraw() {
  padCtx.clearRect(0, 0, pad.width, pad.height);
  padCtx.strokeStyle = "#f8f9fa";
  padCtx.fillStyle = "#f8f9fa";
  padCtx.lineWidth = 18;
  padCtx.lineCap = "round";
  padCtx.lineJoin = "round";
  for (const s of strokes) traceStroke(padCtx, s, (p) => p);
}

function traceStroke(ctx, s, map) {
  const [x0, y0] = map(s[0]);
  ctx.beginPath();
  if (s.length === 1) {
    ctx.arc(x0, y0, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.moveTo(x0, y0);
  for (let i = 1; i < s.length; i++) ctx.lineTo(...map(s[i]));
  ctx.stroke();
}

function point(ev) {
  const r = pad.getBoundingClientRect();
  return [ev.clientX - r.left, ev.clientY - r.top];
}

pad.addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0) return;
  pad.setPointerCapture(ev.pointerId);
  drawing = [point(ev)];
  strokes.push(drawing);
  $("digit-prediction").dataset.final = "false";
  redraw();
});
pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of events.length ? events : [ev]) drawing.push(point(e));
  redraw();
  scheduleDigit();
});
const endStroke = () => {
  if (!drawing) return;
  drawing = null;
  sendDigit(true);
};
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("clear").addEventListener("click", () => {
  strokes = [];
  drawing = null;
  digitFinalWanted = false;
  generation++;
  redraw();
  showDigit(null);
});

function scheduleDigit() {
  const wait = SEND_EVERY_MS - (performance.now() - lastSend);
  if (wait <= 0) return sendDigit(false);
  if (!sendTimer) sendTimer = setTimeout(() => ((sendTimer = null), sendDigit(false)), wait);
}

// The page's half of the contract with the training data (train_digits.py, strokes_to_pixels):
// the strokes' bounding box is fitted into the 32x32 frame (the longer side FRAME - PEN, aspect
// kept, centred), drawn with a round pen PEN wide, and the ink of every 4x4 block summed: 0..16.
function digitPixels(all) {
  const pts = all.flat();
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const scale = (FRAME - PEN) / Math.max(x1 - x0, y1 - y0, 1e-6);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const size = FRAME * SUPER;
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = PEN * SUPER;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const map = ([x, y]) => [((x - cx) * scale + FRAME / 2) * SUPER, ((y - cy) * scale + FRAME / 2) * SUPER];
  for (const s of all) traceStroke(ctx, s, map);
  const alpha = ctx.getImageData(0, 0, size, size).data;
  const out = new Float32Array(64);
  const cell = BLOCK * SUPER;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      out[((y / cell) | 0) * 8 + ((x / cell) | 0)] += alpha[(y * size + x) * 4 + 3] / 255;
    }
  }
  for (let i = 0; i < 64; i++) out[i] /= SUPER * SUPER;
  return out;
}

function showSeen(pixels) {
  const ctx = $("seen").getContext("2d");
  ctx.clearRect(0, 0, 64, 64);
  if (!pixels) return;
  for (let i = 0; i < 64; i++) {
    const v = Math.round((pixels[i] / 16) * 255);
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % 8) * 8, ((i / 8) | 0) * 8, 8, 8);
  }
}

async function sendDigit(final) {
  if (final) digitFinalWanted = true;
  if (!strokes.length || !strokes.some((s) => s.length)) return;
  if (digitInFlight) {
    digitDirty = true; // sent again when the answer comes
    return;
  }
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  clearTimeout(sendTimer);
  sendTimer = null;
  lastSend = performance.now();
  digitInFlight = true;
  digitDirty = false;
  const isFinal = digitFinalWanted && !drawing;
  const sentFor = generation;
  const pixels = digitPixels(strokes);
  showSeen(pixels);
  try {
    const { msg, ms } = await infer(DIGITS_MODEL, [
      { name: digitInput, datatype: "FP32", shape: [1, 1, 8, 8], data: Array.from(pixels, (v) => +v.toFixed(3)) },
    ]);
    if (sentFor === generation && strokes.length) showDigit(msg.outputs[0].data, ms, isFinal && !digitDirty);
  } catch (e) {
    showError(`digits: ${e.message || e}`);
  } finally {
    digitInFlight = false;
    if (digitDirty) sendDigit(!drawing && digitFinalWanted);
  }
}

const bars = $("bars");
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
  bars.append(li);
}

function showDigit(probs, ms, final) {
  const out = $("digit-prediction");
  const items = bars.children;
  if (!probs) {
    out.textContent = "–";
    out.dataset.final = "false";
    $("digit-confidence").textContent = "draw to start";
    $("digit-latency").textContent = "–";
    showSeen(null);
    for (const li of items) {
      li.classList.remove("top");
      li.querySelector(".fill").style.width = "0";
      li.querySelector(".value").textContent = "";
    }
    return;
  }
  let best = 0;
  for (let d = 1; d < 10; d++) if (probs[d] > probs[best]) best = d;
  out.textContent = String(best);
  out.dataset.final = final ? "true" : "false";
  $("digit-confidence").textContent = `${(probs[best] * 100).toFixed(1)}% sure`;
  $("digit-latency").textContent = `${ms.toFixed(1)} ms`;
  for (let d = 0; d < 10; d++) {
    items[d].classList.toggle("top", d === best);
    items[d].querySelector(".fill").style.width = `${(probs[d] * 100).toFixed(1)}%`;
    items[d].querySelector(".value").textContent = `${(probs[d] * 100).toFixed(1)}%`;
  }
}

// ---- images ----------------------------------------------------------------------------

// Shorter side to 224, centre crop, then ImageNet normalisation, channels first.
async function imageTensor(file) {
  const bitmap = await createImageBitmap(file);
  const canvas = new OffscreenCanvas(224, 224);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const s = 224 / Math.min(bitmap.width, bitmap.height);
  const w = bitmap.width * s;
  const h = bitmap.height * s;
  ctx.drawImage(bitmap, (224 - w) / 2, (224 - h) / 2, w, h);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, 224, 224).data;
  const plane = 224 * 224;
  const data = new Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      data[c * plane + i] = Math.round(((rgba[i * 4 + c] / 255 - MEAN[c]) / STD[c]) * 1e4) / 1e4;
    }
  }
  return data;
}

function top5(logits) {
  const max = Math.max(...logits);
  const exp = logits.map((v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp
    .map((v, i) => [i, v / sum])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
}

async function classify(file) {
  const li = document.createElement("li");
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.alt = "";
  img.onload = () => URL.revokeObjectURL(img.src);
  const info = document.createElement("div");
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = file.name;
  const status = document.createElement("div");
  status.className = "top5";
  status.textContent = "preparing…";
  info.append(name, status);
  li.append(img, info);
  $("images").prepend(li);
  const model = imageModels.find((m) => m.name === $("image-model").value);
  if (!model) {
    status.className = "top5 failed";
    status.textContent = "no image model in the repository (make run adds mobilenet_v2 and squeezenet1_1)";
    return;
  }
  try {
    const data = await imageTensor(file);
    status.textContent = `waiting for ${model.name}…`;
    const { msg, ms } = await infer(model.name, [
      { name: model.input, datatype: "FP32", shape: [1, 3, 224, 224], data },
    ]);
    const best = top5(msg.outputs[0].data);
    status.innerHTML = "";
    const line = document.createElement("div");
    line.innerHTML = `<b>${model.name}</b> · ${ms.toFixed(1)} ms · top 5: `;
    line.append(best.map(([i, p]) => `#${i} ${(p * 100).toFixed(1)}%`).join(", "));
    status.append(line);
  } catch (e) {
    status.className = "top5 failed";
    status.textContent = `failed: ${e.message || e}`;
  }
}

function classifyAll(files) {
  // Each image goes as soon as it is ready; answers come back as each finishes.
  for (const f of files) if (f.type.startsWith("image/")) classify(f);
}

const drop = $("drop");
drop.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  classifyAll(ev.dataTransfer.files);
});
drop.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" || ev.key === " ") $("file").click();
});
$("file").addEventListener("change", (ev) => {
  classifyAll(ev.target.files);
  ev.target.value = "";
});
// Files dropped outside the zone are not opened by the webview.
window.addEventListener("dragover", (ev) => ev.preventDefault());
window.addEventListener("drop", (ev) => ev.preventDefault());

window.addEventListener("resize", sizePad);
sizePad();
showDigit(null);
connect();
