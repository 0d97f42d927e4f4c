#!/usr/bin/python3
"""Train the demo's handwritten-digit classifier on the digits data that ships with scikit-learn.

The data is sklearn.datasets.load_digits: 1797 handwritten digits from the UCI "optdigits"
set, each a 32x32 bitmap reduced to 8x8 by counting the ink pixels in every 4x4 block, so
values run 0..16. Nothing is downloaded: when python3-sklearn cannot be imported (it cannot
be installed beside libboost1.81-dev, see scripts/setup), digits.csv.gz is read from the
package unpacked into build/debian/python3-sklearn.

The network is a small CNN. Training uses random affine distortions (rotation, scale,
shear, sub-pixel shifts) and ink gain, so that digits drawn with a mouse in the demo page
(web/demo/, which turns strokes into the same 8x8 block counts) are recognised, not only the
scanned ones. The split is fixed (seeded): 80% train, 20% held out, stratified by class.

Under --out DIR (the reference-model layout, so tests/models/check_reference_model works):
    DIR/digits/model.onnx        input  pixels         float[batch, 1, 8, 8], sklearn's 0..16 scale
                                 output probabilities  float[batch, 10] (softmax over digits 0..9)
    DIR/digits/inputs/pixels.npy         16 held-out digits
    DIR/digits/outputs/probabilities.npy PyTorch's output for them
    DIR/digits/meta.json         held-out accuracy, split, strokes check; written last ("done")

Held-out accuracy under 95% fails the script. Also checked, and recorded in meta.json: digits
drawn as strokes (a 0 as an ellipse, a 1 as a line, a 7) rendered and reduced as the page does.
Skipped when meta.json is newer than this script.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

REPO = Path(__file__).resolve().parents[2]
NAME = "digits"
OPSETS = (17, 16, 15, 14, 13)
SKLEARN_DIGITS = "usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
SEED = 20240
MIN_ACCURACY = 0.95


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_data():
    """(X float32 [1797, 8, 8] in 0..16, y int64 [1797], where the data came from)."""
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.images.astype(np.float32), d.target.astype(np.int64), "sklearn.datasets.load_digits"
    except ImportError:
        pass
    for root in (REPO / "build/debian/python3-sklearn", Path("/")):
        path = root / SKLEARN_DIGITS
        if path.exists():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",", dtype=np.float32)
            return data[:, :64].reshape(-1, 8, 8), data[:, 64].astype(np.int64), str(path)
    sys.exit("train_digits.py: scikit-learn's digits.csv.gz not found; run scripts/setup "
             "(it unpacks python3-sklearn into build/debian/python3-sklearn)")


class DigitNet(nn.Module):
    """8x8 block counts (0..16) -> probabilities of 0..9."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                  nn.Linear(64, 10))

    def logits(self, pixels):
        return self.head(self.features(pixels * (1.0 / 16.0)))

    def forward(self, pixels):
        return torch.softmax(self.logits(pixels), dim=1)


def augment(x, gen):
    """Random affine distortion with bilinear resampling, then ink gain; x is [N, 1, 8, 8] in 0..16."""
    n = x.shape[0]

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-0.26, 0.26)  # about +-15 degrees
    sx, sy = uniform(0.75, 1.2), uniform(0.85, 1.15)
    shear = uniform(-0.25, 0.25)
    tx, ty = uniform(-0.2, 0.2), uniform(-0.15, 0.15)  # in [-1, 1] coordinates: about +-0.8 and +-0.6 px
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos / sx, (-sin + shear) / sx, tx], dim=1),
        torch.stack([sin / sy, cos / sy, ty], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Thicker or thinner strokes change how much ink each block counts.
    gain = uniform(0.7, 1.5).view(n, 1, 1, 1)
    return (out * gain).clamp(0.0, 16.0)


def split(y, gen):
    """Stratified 80/20 split: indices (train, test)."""
    train, test = [], []
    for k in range(10):
        idx = np.flatnonzero(y == k)
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
        cut = int(round(0.8 * len(idx)))
        train += idx[:cut].tolist()
        test += idx[cut:].tolist()
    return np.array(sorted(train)), np.array(sorted(test))


def train(x, y):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tr, te = split(y, gen)
    xt = torch.tensor(x[tr]).unsqueeze(1)
    yt = torch.tensor(y[tr])
    model = DigitNet()
    epochs, batch = 40, 64
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * math.ceil(len(tr) / batch))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        total = 0.0
        for i in range(0, len(tr), batch):
            b = perm[i:i + batch]
            xb = xt[b]
            # Three quarters of each batch distorted; the rest stay as scanned.
            mask = torch.rand(len(b), generator=gen) < 0.75
            xb = torch.where(mask.view(-1, 1, 1, 1), augment(xb, gen), xb)
            loss = F.cross_entropy(model.logits(xb), yt[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(b)
        if epoch % 10 == 9:
            log(f"  epoch {epoch + 1}: training loss {total / len(tr):.4f}")
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(x[te]).unsqueeze(1)).argmax(dim=1).numpy()
    return model, float((pred == y[te]).mean()), tr, te


# The demo page's preprocessing (web/demo/demo.js, digitPixels), in Python: strokes (lists
# of points) are fitted into the 32x32 frame (height or width 32 minus the pen, aspect kept,
# centred), drawn with a round pen 4 pixels wide, and the ink is counted per 4x4 block.
FRAME, PEN, SUPER = 32, 4.0, 8


def strokes_to_pixels(strokes):
    from PIL import Image, ImageDraw
    pts = np.concatenate([np.asarray(s, dtype=np.float64) for s in strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = max(hi[0] - lo[0], hi[1] - lo[1], 1e-6)
    scale = (FRAME - PEN) / size
    centre = (lo + hi) / 2
    img = Image.new("L", (FRAME * SUPER, FRAME * SUPER), 0)
    draw = ImageDraw.Draw(img)
    r = PEN * SUPER / 2
    for s in strokes:
        p = [((x - centre[0]) * scale + FRAME / 2, (y - centre[1]) * scale + FRAME / 2) for x, y in s]
        p = [(x * SUPER, y * SUPER) for x, y in p]
        draw.line(p, fill=255, width=int(PEN * SUPER), joint="curve")
        for x, y in p:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    ink = np.asarray(img, dtype=np.float32) / 255.0
    # Coverage of each 32x32 pixel, then ink per 4x4 block: 0..16.
    cover = ink.reshape(FRAME, SUPER, FRAME, SUPER).mean(axis=(1, 3))
    return cover.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32)


def drawn_digits():
    """Digits as a mouse draws them (the browser test draws the same shapes)."""
    t = np.linspace(0, 2 * math.pi, 48)
    return {
        0: [list(zip(200 + 70 * np.sin(t), 200 - 110 * np.cos(t)))],
        1: [[(200, 90), (200, 310)]],
        7: [[(130, 100), (270, 100), (180, 310)]],
        4: [[(220, 90), (130, 240), (280, 240)], [(230, 170), (230, 320)]],
    }


def export(model, path):
    example = torch.zeros(2, 1, 8, 8)
    last = None
    for opset in OPSETS:
        try:
            torch.onnx.export(model, (example,), str(path), input_names=["pixels"], output_names=["probabilities"],
                              opset_version=opset, do_constant_folding=True,
                              dynamic_axes={"pixels": {0: "batch"}, "probabilities": {0: "batch"}})
            return opset
        except Exception as e:  # noqa: BLE001 - an older exporter may not do this opset
            last = e
    raise last


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="the reference-model folder (build/models)")
    args = ap.parse_args()
    d = args.out / NAME
    meta_path = d / "meta.json"
    if meta_path.exists() and meta_path.stat().st_mtime > Path(__file__).stat().st_mtime \
            and (d / "model.onnx").exists():
        log(f"[{NAME}] up to date, skipped")
        return
    torch.set_num_threads(1)  # a net this small trains no faster on more threads
    start = time.perf_counter()
    x, y, origin = load_data()
    assert x.shape == (1797, 8, 8), x.shape
    log(f"[{NAME}] training on {origin}")
    model, accuracy, tr, te = train(x, y)
    log(f"[{NAME}] held-out accuracy {accuracy:.4f} ({len(te)} digits, {len(tr)} trained on)")
    if accuracy < MIN_ACCURACY:
        sys.exit(f"train_digits.py: held-out accuracy {accuracy:.3f} is under {MIN_ACCURACY}; training went wrong")

    drawn = {}
    with torch.no_grad():
        for digit, strokes in drawn_digits().items():
            p = model(torch.tensor(strokes_to_pixels(strokes)).view(1, 1, 8, 8))[0]
            drawn[str(digit)] = {"predicted": int(p.argmax()), "probability": round(float(p.max()), 4)}
            log(f"  drawn {digit}: predicted {int(p.argmax())} ({float(p.max()):.3f})")

    (d / "inputs").mkdir(parents=True, exist_ok=True)
    (d / "outputs").mkdir(parents=True, exist_ok=True)
    opset = export(model, d / "model.onnx")
    onnx.checker.check_model(onnx.load(str(d / "model.onnx")), full_check=True)
    sample = torch.tensor(x[te[:16]]).unsqueeze(1)
    with torch.no_grad():
        probs = model(sample).numpy()
    np.save(d / "inputs" / "pixels.npy", sample.numpy())
    np.save(d / "outputs" / "probabilities.npy", probs)
    meta = {
        "name": NAME, "data": origin, "seed": SEED, "opset": opset, "batch": 16,
        "train_digits": int(len(tr)), "test_digits": int(len(te)), "test_accuracy": round(accuracy, 4),
        "drawn_digits": drawn, "torch": torch.__version__,
        "inputs": [{"name": "pixels", "shape": [16, 1, 8, 8], "dims": ["batch", 1, 8, 8], "dtype": "float32",
                    "file": "pixels.npy", "scale": "0..16, ink per 4x4 block of a 32x32 bitmap"}],
        "outputs": [{"name": "probabilities", "shape": [16, 10], "dims": ["batch", 10], "dtype": "float32",
                     "file": "probabilities.npy"}],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")  # last: marks the model done
    log(f"[{NAME}] wrote {d}/model.onnx (opset {opset}) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
