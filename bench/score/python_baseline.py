#!/usr/bin/python3
"""The Python way to do what `deskml score` does: the baseline of bench/run_score_bench.

    python_baseline.py --source sqlite:PATH|postgresql://... --query SQL --key COL --into TABLE
                       --model-dir build/tabular [--batch N]

Reads the query in key order a page at a time (the same keyset SQL deskml uses) with sqlite3 or
psycopg2, stacks the 30 feature columns (in the order of the model's [features.inputs]) into a
float32 tensor, runs the trained PyTorch module (breast_cancer.pt from make_tabular_model.py)
under torch.inference_mode(), and writes key, logits_0, logits_1, probability_0 plus a checkpoint
row in one transaction per page (executemany on SQLite, COPY on PostgreSQL): the same work and the
same guarantees, written the way a careful Python developer would, one step after another.

Prints one JSON line: rows, seconds, rows_per_s, peak_rss_mb.
"""
import argparse
import importlib.util
import io
import json
import resource
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]



def peak_rss_mb():
    """VmHWM of this process; ru_maxrss survives exec and would count the parent's pages."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

def load_model(model_dir):
    spec = importlib.util.spec_from_file_location("make_tabular_model", ROOT / "tests/models/make_tabular_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    state = torch.load(Path(model_dir) / "breast_cancer.pt")
    model = mod.TabularMLP(np.zeros(30), np.ones(30))
    model.load_state_dict(state)
    model.eval()
    config = tomllib.loads((Path(model_dir) / "models/breast_cancer/config.toml").read_text())
    return model, config["features"]["inputs"]["features"]


def page_sql(query, key, after, limit, placeholder):
    where = f"{key} > {placeholder}" if after else f"{key} IS NOT NULL"
    return f"SELECT * FROM (\n{query}\n) AS deskml_rows WHERE {where} ORDER BY {key} LIMIT {limit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--into", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()

    model, columns = load_model(args.model_dir)
    postgres = args.source.startswith(("postgresql://", "postgres://"))
    if postgres:
        import psycopg2
        conn = psycopg2.connect(args.source)
        ph = "%s"
        key_type = "BIGINT"
    else:
        import sqlite3
        conn = sqlite3.connect(args.source.removeprefix("sqlite:"))
        ph = "?"
        key_type = "INTEGER"
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {args.into}")
    cur.execute(f"DROP TABLE IF EXISTS {args.into}_checkpoint")
    cur.execute(f"CREATE TABLE {args.into} (key {key_type} PRIMARY KEY, logits_0 REAL, logits_1 REAL, "
                f"probability_0 REAL)")
    cur.execute(f"CREATE TABLE {args.into}_checkpoint (last_key {key_type}, rows_done BIGINT)")
    cur.execute(f"INSERT INTO {args.into}_checkpoint VALUES (NULL, 0)")
    conn.commit()

    start = time.perf_counter()
    after, done = None, 0
    with torch.inference_mode():
        while True:
            cur.execute(page_sql(args.query, args.key, after is not None, args.batch, ph),
                        (after,) if after is not None else ())
            rows = cur.fetchall()
            if not rows:
                break
            names = [d[0] for d in cur.description]
            key_at = names.index(args.key)
            picks = [names.index(c) for c in columns]
            features = torch.tensor(np.array([[r[i] for i in picks] for r in rows], dtype=np.float32))
            logits, prob = model(features)
            keys = [r[key_at] for r in rows]
            values = np.concatenate([logits.numpy(), prob.numpy()], axis=1)
            if postgres:
                buf = io.StringIO()
                for k, v in zip(keys, values):
                    buf.write(f"{k}\t{v[0]!r}\t{v[1]!r}\t{v[2]!r}\n")
                buf.seek(0)
                cur.copy_expert(f"COPY {args.into} FROM STDIN", buf)
            else:
                cur.executemany(f"INSERT INTO {args.into} VALUES (?, ?, ?, ?)",
                                [(k, float(v[0]), float(v[1]), float(v[2])) for k, v in zip(keys, values)])
            done += len(rows)
            after = keys[-1]
            cur.execute(f"UPDATE {args.into}_checkpoint SET last_key = {ph}, rows_done = {ph}", (after, done))
            conn.commit()
            if len(rows) < args.batch:
                break
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    print(json.dumps({"rows": done, "seconds": seconds, "rows_per_s": done / seconds if seconds else 0,
                      "peak_rss_mb": peak}))


if __name__ == "__main__":
    sys.exit(main())
