#!/usr/bin/python3
"""Writes realistic inputs for the pretrained models that fetch_models set up.

    make_inputs.py [--dir build/pretrained] [--only NAME,...] [--ort-run tools/ort/ort_run.mjs] [--force]

For each DIR/<name>/model.onnx this writes DIR/<name>/inputs/<input name>.npy, checked against the
model's declared inputs (names, dtypes, ranks, fixed dims):

- ocr_det: a 640x480 rendered page of text, normalised as PaddleOCR's detector expects (BGR,
  ImageNet mean/std, NCHW).
- ocr_rec / ocr_cls: one rendered text line, 48 px high, normalised to [-1, 1] and zero-padded on
  the right to the recogniser's (ratio-dependent) width or the classifier's 192.
- silero_vad_*: one 16 kHz frame of speech (espeak-ng when installed, else a synthetic voiced
  signal) with the stream state the model itself carries over from the preceding frames; sr is an
  int64 scalar 16000. v4 takes 1536 samples with h/c; v5, v6 and the other exports take the 64-sample
  context plus 512 samples with one `state` tensor.
- oww_*: openWakeWord's pipeline: melspectrogram takes 4 s of int16-scaled audio; the embedding model
  takes windows of 76 mel frames (step 8, mel/10 + 2); each wake-word classifier takes its last
  N embeddings of a clip in which its own phrase is spoken.

States, mel frames and embeddings come from running the upstream models in ONNX Runtime
(tools/ort/ort_run.mjs), as an application would. Everything is seeded: the same machine gives the
same inputs on every run. A model whose inputs are newer than its model.onnx and this script is
skipped unless --force.
"""
import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[2]
SR = 16000
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

# The phrase (and espeak-ng voice) spoken in the clip each wake-word classifier is fed. hey_jarvis
# fires on espeak's voice (score 0.998), which also runs the verifier in its If's then-branch; the
# other classifiers score espeak lower, which is still a realistic input.
WAKE_PHRASES = {
    "oww_hey_jarvis": ("hey jarvis", "en-us"),
    "oww_alexa": ("alexa", "en-gb"),
    "oww_hey_mycroft": ("hey mycroft", "en-us"),
    "oww_hey_rhasspy": ("hey rhasspy", "en-us"),
    "oww_timer": ("set a timer for ten minutes", "en-us"),
    "oww_weather": ("what is the weather today", "en-us"),
}


# ---------------------------------------------------------------------------------------------
# Running the upstream models in ONNX Runtime


class OrtRunner:
    def __init__(self, script):
        self.script = Path(script)
        if not self.script.is_file():
            raise SystemExit(f"make_inputs: {self.script} not found")
        if shutil.which("node") is None:
            raise SystemExit("make_inputs: node not found; ONNX Runtime runs through tools/ort (Node 20+)")

    def __call__(self, model, feeds):
        """Runs MODEL once on FEEDS ({name: array}) and returns {output file stem: array}."""
        with tempfile.TemporaryDirectory(prefix="make_inputs_") as tmp:
            tmp = Path(tmp)
            args = ["node", str(self.script), str(model), "--output-dir", str(tmp / "out"), "--threads", "1"]
            for i, (name, value) in enumerate(feeds.items()):
                path = tmp / f"in{i}.npy"
                np.save(path, value)
                args += ["--input", f"{name}={path}"]
            proc = subprocess.run(args, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"make_inputs: ONNX Runtime failed on {model}:\n{proc.stderr}")
            return {p.stem: np.load(p) for p in (tmp / "out").glob("*.npy")}


def sanitize(name):
    out = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)
    return "_" + out if out in ("", ".", "..") else out


# ---------------------------------------------------------------------------------------------
# Audio


def resample(x, sr_in, sr_out, half_width=32):
    """Band-limited (Hann-windowed sinc) resampling; good enough for speech, no scipy needed."""
    if sr_in == sr_out:
        return x.astype(np.float64)
    n_out = int(len(x) * sr_out / sr_in)
    t = np.arange(n_out) * (sr_in / sr_out)  # output sample times in input samples
    cutoff = min(1.0, sr_out / sr_in)
    base = np.floor(t).astype(np.int64)
    out = np.zeros(n_out)
    for k in range(-half_width + 1, half_width + 1):
        idx = base + k
        d = t - idx
        w = 0.5 + 0.5 * np.cos(np.pi * np.clip(d / half_width, -1, 1))
        h = cutoff * np.sinc(cutoff * d) * w
        valid = (idx >= 0) & (idx < len(x))
        out[valid] += x[idx[valid]] * h[valid]
    return out


def espeak(text, voice="en-us", speed=150):
    """Speech from espeak-ng as float64 in [-1, 1] at 16 kHz, or None without espeak-ng."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", f.name, text], check=True,
                       capture_output=True)
        with wave.open(f.name) as w:
            sr, n, width = w.getframerate(), w.getnframes(), w.getsampwidth()
            raw = w.readframes(n)
    if width != 2:
        raise SystemExit(f"make_inputs: unexpected {width * 8}-bit audio from {exe}")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    return resample(x, sr, SR)


def synthetic_speech(text, rng):
    """A voiced, speech-like stand-in when espeak-ng is missing: a glottal pulse train with vibrato
    through three vowel formants, one syllable per vowel in TEXT, with fricative noise bursts."""
    syllables = max(1, sum(c in "aeiouy" for c in text.lower()))
    dur = 0.22 * syllables + 0.1
    n = int(dur * SR)
    t = np.arange(n) / SR
    f0 = 125 + 15 * np.sin(2 * np.pi * 3 * t) - 20 * t / dur
    phase = np.cumsum(f0) / SR
    source = (np.mod(phase, 1.0) < 0.08).astype(np.float64) - 0.08  # pulse train
    out = np.zeros(n)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    seg = n // syllables
    for s in range(syllables):
        f = vowels[s % len(vowels)]
        lo, hi = s * seg, min(n, (s + 1) * seg)
        y = np.zeros(hi - lo)
        for formant, bw in zip(f, (80, 100, 120)):  # two-pole resonators
            r = math.exp(-math.pi * bw / SR)
            a1, a2 = -2 * r * math.cos(2 * math.pi * formant / SR), r * r
            seg_in = source[lo:hi]
            z = np.zeros_like(seg_in)
            for i in range(len(seg_in)):
                z[i] = seg_in[i] - a1 * (z[i - 1] if i > 0 else 0) - a2 * (z[i - 2] if i > 1 else 0)
            y += z
        env = np.sin(np.pi * np.linspace(0, 1, hi - lo)) ** 0.7
        noise = rng.standard_normal(hi - lo) * np.exp(-np.linspace(0, 8, hi - lo))  # consonant onset
        out[lo:hi] = y * env + 0.3 * noise
    return 0.5 * out / (np.max(np.abs(out)) + 1e-9)


def speech(text, rng, voice="en-us"):
    x = espeak(text, voice)
    return x if x is not None else synthetic_speech(text, rng)


def clip(text, rng, before, seconds=None, voice="en-us"):
    """Room noise with TEXT spoken after BEFORE seconds, in [-1, 1]; SECONDS long if given (noise after
    the speech), else ending where the speech (and espeak's own short trailing silence) ends.
    Returns (audio, index of the first speech sample)."""
    s = 0.6 * speech(text, rng, voice)
    start = int(before * SR)
    n = start + len(s) if seconds is None else int(seconds * SR)
    out = 0.003 * rng.standard_normal(n)  # quiet room noise
    s = s[: max(0, n - start)]
    out[start:start + len(s)] += s
    return out, start


# ---------------------------------------------------------------------------------------------
# Text images


def font(size, bold=False):
    from PIL import ImageFont

    path = FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default()


def render_page(width, height, rng):
    """A photographed-document-like page: off-white with a light gradient and noise, several lines of
    text in different sizes, weights and colours, one rotated a little."""
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:height, 0:width]
    bg = 235 + 12 * (x / width) - 10 * (y / height)
    base = np.stack([bg - 4, bg, bg + 3], axis=-1) + rng.normal(0, 2.5, (height, width, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    lines = [
        ("INVOICE  No. 2024-0815", 34, True, (20, 20, 30)),
        ("deskml Software Ltd., 12 Harbour Road", 20, False, (40, 40, 40)),
        ("Date: 22 November 2026    Due: 22 December 2026", 18, False, (60, 60, 60)),
        ("Item                     Qty     Price", 22, True, (10, 10, 10)),
        ("ONNX inference engine      1    $499.00", 22, False, (10, 10, 10)),
        ("Support (12 months)        1    $120.00", 22, False, (10, 10, 10)),
        ("Total:  $619.00", 30, True, (160, 20, 20)),
    ]
    top = 30
    for text, size, bold, colour in lines:
        draw.text((40, top), text, font=font(size, bold), fill=colour)
        top += int(size * 1.9)
    stamp = Image.new("RGBA", (330, 60), (0, 0, 0, 0))
    ImageDraw.Draw(stamp).text((8, 8), "PAID  THANK YOU", font=font(28, True), fill=(30, 60, 170, 255))
    stamp = stamp.rotate(8, expand=True, resample=Image.BICUBIC)
    img.paste(stamp, (290, height - 130), stamp)
    return img


def render_line(text, rng, height=48):
    """One cropped text line as a detector would hand it to the recogniser: tight box plus a few px."""
    from PIL import Image, ImageDraw

    f = font(34)
    left, top, right, bottom = f.getbbox(text)
    pad = 6
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    bg = np.clip(240 + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=f, fill=(25, 25, 35))
    scale = height / h
    return img.resize((max(1, round(w * scale)), height), Image.BILINEAR)


def to_bgr_float(img):
    return np.asarray(img.convert("RGB"), dtype=np.float32)[:, :, ::-1] / 255.0


def det_input(img):
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = (to_bgr_float(img) - mean) / std
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def line_input(img, width):
    """PaddleOCR's rec/cls normalisation: [-1, 1], resized to height 48, zero-padded to WIDTH."""
    from PIL import Image

    h = 48
    w = min(width, math.ceil(h * img.width / img.height))
    x = (to_bgr_float(img.resize((w, h), Image.BILINEAR)) - 0.5) / 0.5
    out = np.zeros((1, 3, h, width), np.float32)
    out[0, :, :, :w] = x.transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Per model family


def ocr_inputs(name, model, rng, ort):
    if name == "ocr_det":
        return {"x": det_input(render_page(640, 480, rng))}
    line = render_line("Total: $619.00 (paid 22/11)", rng)
    if name == "ocr_rec":
        width = max(320, math.ceil(48 * line.width / line.height / 8) * 8)
        return {"x": line_input(line, width)}
    if name == "ocr_cls":
        return {"x": line_input(line, 192)}
    raise KeyError(name)


def vad_inputs(name, model, rng, ort):
    """The frame after PRIOR frames of speech, with the state the model produced for them."""
    audio, start = clip("hello, can you hear me? I am testing the voice detector", rng, 1.0, seconds=4.5)
    declared = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    outputs = [o.name for o in model.graph.output]
    sr = np.array(SR, dtype=np.int64)
    prior = 4
    if name == "silero_vad_v4":
        frame = 1536
        h = np.zeros((2, 1, 64), np.float32)
        c = np.zeros((2, 1, 64), np.float32)
        pos = start
        for _ in range(prior):
            out = ort(model_path(name), {"input": audio[None, pos:pos + frame].astype(np.float32), "sr": sr,
                                         "h": h, "c": c})
            h, c = out[sanitize(outputs[1])], out[sanitize(outputs[2])]
            pos += frame
        return {"input": audio[None, pos:pos + frame].astype(np.float32), "sr": sr, "h": h, "c": c}

    frame, context = 512, 64
    state = np.zeros((2, 1, 128), np.float32)
    pos = start

    def feeds(pos, state):
        f = {"input": audio[None, pos - context:pos + frame].astype(np.float32), "state": state}
        if "sr" in declared:
            f["sr"] = sr
        return f

    for _ in range(prior):
        out = ort(model_path(name), feeds(pos, state))
        state = out[sanitize(outputs[1])]
        pos += frame
    return feeds(pos, state)


class WakeWordFeatures:
    """openWakeWord's feature pipeline (melspectrogram -> embeddings), run in ONNX Runtime."""

    def __init__(self, ort, mel_model, embedding_model):
        self.ort, self.mel_model, self.embedding_model = ort, mel_model, embedding_model

    @staticmethod
    def pcm(audio):
        return (np.clip(audio, -1, 1) * 32767).astype(np.int16).astype(np.float32)[None]  # int16 scale

    def mel(self, audio):
        out = self.ort(self.mel_model, {"input": self.pcm(audio)})
        (spec,) = out.values()
        return np.squeeze(spec) / 10.0 + 2.0  # [frames, 32], as openWakeWord feeds the embedding model

    @staticmethod
    def windows(mel):
        starts = range(0, mel.shape[0] - 76 + 1, 8)
        return np.stack([mel[s:s + 76] for s in starts])[..., None].astype(np.float32)  # [N, 76, 32, 1]

    def embeddings(self, audio):
        out = self.ort(self.embedding_model, {"input_1": self.windows(self.mel(audio))})
        (emb,) = out.values()
        return emb.reshape(emb.shape[0], 96)


def oww_inputs(name, model, rng, ort, features):
    if name in ("oww_melspectrogram", "oww_embedding"):
        audio, _ = clip("hey jarvis", rng, 1.5, seconds=4.0)
        if name == "oww_melspectrogram":
            return {"input": features.pcm(audio)}
        return {"input_1": features.windows(features.mel(audio))}
    phrase, voice = WAKE_PHRASES[name]
    (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    frames = inp.type.tensor_type.shape.dim[1].dim_value  # how many embeddings the classifier takes
    # The classifier sees the last FRAMES embeddings (80 ms apart, each over 0.76 s of audio), ending
    # where the phrase ends: the moment a streaming detector would fire.
    audio, _ = clip(phrase, rng, before=1.0 + frames * 0.08)
    emb = features.embeddings(audio)
    if emb.shape[0] < frames:
        raise SystemExit(f"make_inputs: {name}: {emb.shape[0]} embeddings, need {frames}")
    return {inp.name: emb[None, -frames:].astype(np.float32)}


# ---------------------------------------------------------------------------------------------


ROOT = None


def model_path(name):
    return ROOT / name / "model.onnx"


NP_OF_ONNX = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.BOOL: np.bool_,
}


def check_against_declared(name, model, feeds):
    """Every declared input is fed, with its dtype, rank and fixed (positive) dims."""
    inits = {t.name for t in model.graph.initializer}
    declared = [i for i in model.graph.input if i.name not in inits]
    names = {i.name for i in declared}
    if set(feeds) != names:
        raise SystemExit(f"make_inputs: {name}: made {sorted(feeds)}, model declares {sorted(names)}")
    for i in declared:
        t = i.type.tensor_type
        a = feeds[i.name]
        want = NP_OF_ONNX.get(t.elem_type)
        if want is None or a.dtype != want:
            raise SystemExit(f"make_inputs: {name}: input {i.name} is {a.dtype}, model declares elem_type {t.elem_type}")
        if t.HasField("shape"):
            dims = t.shape.dim
            if len(dims) != a.ndim:
                raise SystemExit(f"make_inputs: {name}: input {i.name} has rank {a.ndim}, model declares {len(dims)}")
            for k, d in enumerate(dims):
                if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != a.shape[k]:
                    raise SystemExit(f"make_inputs: {name}: input {i.name} dim {k} is {a.shape[k]}, model declares {d.dim_value}")
        if "/" in i.name or i.name in ("", ".", ".."):
            raise SystemExit(f"make_inputs: {name}: input name {i.name!r} cannot be a file name")


def main():
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=REPO / "build" / "pretrained")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--ort-run", default=REPO / "tools" / "ort" / "ort_run.mjs")
    parser.add_argument("--force", action="store_true",
                        help="remake inputs that are newer than the model and this script")
    args = parser.parse_args()
    ROOT = args.dir.resolve()
    names = sorted(p.parent.name for p in ROOT.glob("*/model.onnx"))
    if args.only:
        wanted = set(args.only.split(","))
        if wanted - set(names):
            parser.error(f"no model {sorted(wanted - set(names))} under {ROOT}")
        names = [n for n in names if n in wanted]
    if not names:
        print(f"make_inputs: no models under {ROOT} (run tools/pretrained/fetch_models first)", file=sys.stderr)
        return 2
    ort = OrtRunner(args.ort_run)
    features = None
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        print("make_inputs: espeak-ng not installed; using synthetic voiced audio", file=sys.stderr)

    script_time = Path(__file__).stat().st_mtime
    for name in names:
        done = ROOT / name / "inputs" / ".complete"
        if (not args.force and done.exists()
                and done.stat().st_mtime >= max(script_time, model_path(name).stat().st_mtime)):
            continue
        rng = np.random.default_rng(hash_name(name))
        model = onnx.load(str(model_path(name)), load_external_data=False)
        if name.startswith("ocr_"):
            feeds = ocr_inputs(name, model, rng, ort)
        elif name.startswith("silero_vad"):
            feeds = vad_inputs(name, model, rng, ort)
        elif name.startswith("oww_"):
            if features is None:
                features = WakeWordFeatures(ort, model_path("oww_melspectrogram"), model_path("oww_embedding"))
            feeds = oww_inputs(name, model, rng, ort, features)
        else:
            print(f"make_inputs: {name}: no input recipe, skipped", file=sys.stderr)
            continue
        check_against_declared(name, model, feeds)
        out = ROOT / name / "inputs"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for k, v in feeds.items():
            np.save(out / f"{k}.npy", v)
        done.touch()
        desc = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items())
        print(f"{name}: {desc}")
    return 0


def hash_name(name):
    """A stable per-model seed (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode())


if __name__ == "__main__":
    sys.exit(main())
