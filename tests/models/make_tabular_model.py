#!/usr/bin/python3
"""Train deskml's tabular test model on real data and write what the scoring tests need.

The data is the Wisconsin diagnostic breast-cancer set that scikit-learn bundles
(sklearn.datasets.load_breast_cancer: 569 tumours, 30 real-valued features, malignant
or benign); nothing is downloaded. When python3-sklearn cannot be imported (it cannot
be installed beside libboost1.81-dev, see scripts/setup), the same CSV file is read
from the package unpacked into build/debian/python3-sklearn.

Under --out DIR:
    DIR/models/breast_cancer/1/model.onnx   MLP 30 -> 32 -> 16 -> 2; standardisation inside the graph,
                                            so raw features go in. Input features float[batch, 30];
                                            outputs logits float[batch, 2] and probability float[batch, 1]
                                            (P(benign)). opset 17, dynamic batch axis.
    DIR/models/breast_cancer/config.toml    batching, the declared input, and [features.inputs]
                                            mapping the 30 snake_case columns to the input in order
    DIR/breast_cancer.csv                   id, the 30 features (snake_case names), target (0 malignant,
                                            1 benign); loadable with COPY ... CSV HEADER or sqlite3 .import
    DIR/expected.csv                        id, logits_0, logits_1, probability_0: PyTorch's outputs per row
    DIR/breast_cancer.pt                    the PyTorch state dict (TabularMLP), for the scoring benchmark's
                                            Python baseline (bench/score/python_baseline.py)
    DIR/meta.json                           feature names, split, held-out accuracy; written last ("done")

With --synthetic-rows N, also DIR/synthetic_N.csv (same columns, ids 1..N): rows resampled from
the real data with Gaussian jitter of 5% of each feature's standard deviation, clipped at 0
(every feature is non-negative), for tests and benchmarks that need more rows than 569.
--synthetic-only skips training (the real data is still read).

Seeds are fixed: reruns give the same weights and rows. The model is retrained only when
meta.json is older than this script; a synthetic file is rewritten only when missing.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

REPO = Path(__file__).resolve().parents[2]
MODEL = "breast_cancer"
OPSETS = (17, 16, 15, 14, 13)
SKLEARN_CSV = "usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
# The order and names of sklearn's load_breast_cancer().feature_names, in snake_case.
FEATURES = (
    [f"mean_{n}" for n in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                           "concave_points", "symmetry", "fractal_dimension")]
    + [f"{n}_error" for n in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                              "concave_points", "symmetry", "fractal_dimension")]
    + [f"worst_{n}" for n in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                              "concave_points", "symmetry", "fractal_dimension")]
)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_data():
    """(X float64 [569, 30], y int64 [569], where the data came from)."""
    try:
        from sklearn.datasets import load_breast_cancer
        d = load_breast_cancer()
        return d.data.astype(np.float64), d.target.astype(np.int64), "sklearn.datasets.load_breast_cancer"
    except ImportError:
        pass
    for root in (REPO / "build/debian/python3-sklearn", Path("/")):
        path = root / SKLEARN_CSV
        if path.exists():
            with open(path) as f:
                rows = list(csv.reader(f))
            n, width = int(rows[0][0]), int(rows[0][1])  # header: 569,30,malignant,benign
            data = np.array([[float(v) for v in r[:width]] for r in rows[1:n + 1]], dtype=np.float64)
            target = np.array([int(r[width]) for r in rows[1:n + 1]], dtype=np.int64)
            return data, target, str(path)
    sys.exit("make_tabular_model.py: scikit-learn's breast_cancer.csv not found; run scripts/setup "
             "(it unpacks python3-sklearn into build/debian/python3-sklearn)")


class TabularMLP(nn.Module):
    """Standardises raw features with the training set's statistics, then a small MLP."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(1.0 / std, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, features):
        logits = self.net((features - self.mean) * self.scale)
        return logits, torch.softmax(logits, dim=-1)[:, 1:2]


def train(x, y):
    torch.manual_seed(0)
    perm = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    tr, te = perm[:cut], perm[cut:]
    model = TabularMLP(x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-12)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-3)
    xt = torch.tensor(x[tr], dtype=torch.float32)
    yt = torch.tensor(y[tr])
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(200):
        opt.zero_grad()
        loss = loss_fn(model(xt)[0], yt)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(x[te], dtype=torch.float32))[0].argmax(dim=1).numpy()
    return model, float((pred == y[te]).mean()), len(tr), len(te), float(loss)


def export(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(4, 30)
    last = None
    for opset in OPSETS:
        try:
            torch.onnx.export(model, (example,), str(path), input_names=["features"],
                              output_names=["logits", "probability"], opset_version=opset,
                              do_constant_folding=True,
                              dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"},
                                            "probability": {0: "batch"}})
            return opset
        except Exception as e:  # an older torch may not export 17
            last = e
    raise last


def write_rows(path, ids, x, y, fmt=repr):
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", *FEATURES, "target"])
        for i, row, t in zip(ids, x, y):
            w.writerow([int(i), *(fmt(float(v)) for v in row), int(t)])
    tmp.replace(path)


def write_synthetic(out, x, y, n):
    """Rows drawn from the real ones with jitter; written in chunks so memory stays small."""
    path = out / f"synthetic_{n}.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(12345)
    std = x.std(axis=0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(",".join(["id", *FEATURES, "target"]) + "\n")
        chunk = 100_000
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            pick = rng.integers(0, len(x), size=m)
            rows = np.clip(x[pick] + rng.normal(0.0, 0.05, size=(m, x.shape[1])) * std, 0.0, None)
            ids = np.arange(start + 1, start + m + 1)
            block = np.column_stack([ids, rows, y[pick]])
            np.savetxt(f, block, delimiter=",", fmt=["%d"] + ["%.6g"] * x.shape[1] + ["%d"])
    tmp.replace(path)
    log(f"wrote {path} ({n} rows)")
    return path


CONFIG = """# Breast-cancer classifier trained by tests/models/make_tabular_model.py on scikit-learn's
# bundled Wisconsin diagnostic data. Input: 30 raw features; outputs: logits [N, 2] and
# probability [N, 1] (P(benign)).
max_batch_size = 1024
keep_alive = "forever"

[[input]]
name = "features"
dtype = "FP32"
dims = [-1, 30]

# deskml score and feature lookups: these columns, in this order, make the input, so a
# query may return other columns (the key, the target) beside them.
[features.inputs]
features = [{columns}]
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--synthetic-rows", type=int, action="append", default=[])
    ap.add_argument("--synthetic-only", action="store_true")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    x, y, origin = load_data()
    assert x.shape == (569, 30), x.shape

    meta_path = out / "meta.json"
    fresh = meta_path.exists() and meta_path.stat().st_mtime > Path(__file__).stat().st_mtime
    if not args.synthetic_only and not fresh:
        model, accuracy, n_train, n_test, loss = train(x, y)
        log(f"{MODEL}: held-out accuracy {accuracy:.3f} ({n_test} rows), final training loss {loss:.4f}")
        if accuracy < 0.9:
            sys.exit(f"make_tabular_model.py: accuracy {accuracy:.3f} is too low; training went wrong")
        model_dir = out / "models" / MODEL
        opset = export(model, model_dir / "1" / "model.onnx")
        (model_dir / "config.toml").write_text(CONFIG.format(columns=", ".join(f'"{c}"' for c in FEATURES)))
        torch.save(model.state_dict(), out / f"{MODEL}.pt")
        ids = np.arange(1, len(x) + 1)
        write_rows(out / f"{MODEL}.csv", ids, x, y)
        # What PyTorch computes for each row, from the same float32 values deskml reads.
        with torch.no_grad():
            logits, prob = model(torch.tensor(x.astype(np.float32)))
        with open(out / "expected.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "logits_0", "logits_1", "probability_0"])
            for i, l, p in zip(ids, logits.numpy(), prob.numpy()):
                w.writerow([int(i), repr(float(l[0])), repr(float(l[1])), repr(float(p[0]))])
        meta = {"model": MODEL, "data": origin, "rows": int(len(x)), "features": FEATURES,
                "train_rows": n_train, "test_rows": n_test, "test_accuracy": accuracy, "opset": opset,
                "outputs": ["logits", "probability"]}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        log(f"wrote {out}/models/{MODEL} (opset {opset}), {MODEL}.csv, expected.csv")
    for n in args.synthetic_rows:
        write_synthetic(out, x, y, n)


if __name__ == "__main__":
    main()
