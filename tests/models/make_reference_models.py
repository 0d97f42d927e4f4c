#!/usr/bin/python3
"""Build deskml's reference models: ONNX files plus PyTorch's inputs and outputs for them.

For each model, under --out DIR:
    DIR/<name>/model.onnx             torch.onnx.export, opset 17, constant folding, dynamic batch
    DIR/<name>/inputs/<input>.npy     what was fed to PyTorch
    DIR/<name>/outputs/<output>.npy   what PyTorch returned (float32)
    DIR/<name>/meta.json              names, shapes, dtypes, tolerances, opset, op histogram

Models: resnet50, mobilenet_v2, efficientnet_b0, squeezenet1_1 (torchvision architectures);
mlp (tabular, 30 -> 64 -> 32 -> 2); encoder (6-layer BERT/MiniLM-style, post-LayerNorm, erf GELU,
float embeddings [batch, seq, 384] in); gpt2 (4-layer GPT-2-style decoder, pre-LayerNorm, tanh
GELU, causal mask, token ids [batch, seq] in, logits out). The attention blocks are hand-written
with the ops Hugging Face models export (MatMul, Softmax, Reshape/Transpose, Where, Erf, Tanh).

Why the weights are random: this machine has no network and no pretrained weights. That does not
weaken the test: the engine is compared with PyTorch on the *same* weights and inputs, so any fixed
weights are a valid correctness reference. Random weights need one fix to behave like a trained
network: BatchNorm running statistics are calibrated by a few forward passes over random input
(BN layers in train mode, cumulative average), so activations keep a realistic scale through 50
layers instead of exploding or vanishing. Seeds are fixed per model name, so a rerun or --only
reproduces the same weights and data.

meta.json is written last and is the "done" marker: a model is skipped when its meta.json is newer
than this script and was made with the same --batch. Debian's torch lives in /usr/bin/python3; if
another python3 is first on PATH, the script re-executes itself with that one.
"""
import argparse
import json
import math
import os
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torchvision
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

OPSETS = (17, 16, 15, 14, 13)  # 17 first; the rest only if this torch cannot export 17
RTOL, ATOL = 1e-3, 1e-4
MAX_ABS_OUTPUT = 1e4  # a calibrated network's logits stay far below this


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- models

class MLP(nn.Module):
    def __init__(self, dims=(30, 64, 32)):
        super().__init__()
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], 2))

    def forward(self, x):
        return self.net(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention from plain ops. fused_qkv=True is GPT-2's c_attn + split,
    False is BERT's three projections; both patterns occur in real exports."""

    def __init__(self, d, heads, fused_qkv, causal=False, max_len=0):
        super().__init__()
        self.d, self.heads, self.dh, self.causal = d, heads, d // heads, causal
        self.fused_qkv = fused_qkv
        if fused_qkv:
            self.qkv = nn.Linear(d, 3 * d)
        else:
            self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        if causal:  # GPT-2 keeps a max_len x max_len lower-triangular buffer and slices it
            self.register_buffer("mask", torch.ones(max_len, max_len, dtype=torch.bool).tril())

    def forward(self, x):
        b, t = x.shape[0], x.shape[1]
        q, k, v = self.qkv(x).split(self.d, dim=-1) if self.fused_qkv else (self.q(x), self.k(x), self.v(x))
        q, k, v = (z.reshape(b, t, self.heads, self.dh).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        if self.causal:
            scores = scores.masked_fill(~self.mask[:t, :t], torch.finfo(scores.dtype).min)
        y = scores.softmax(dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, self.d))


class TransformerBlock(nn.Module):
    def __init__(self, d, heads, ffn, pre_norm, gelu, **attn_args):
        super().__init__()
        self.attn = SelfAttention(d, heads, **attn_args)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(approximate=gelu), nn.Linear(ffn, d))
        self.pre_norm = pre_norm

    def forward(self, x):
        if self.pre_norm:  # GPT-2
            x = x + self.attn(self.ln1(x))
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attn(x))  # BERT
        return self.ln2(x + self.ffn(x))


def encoder(layers=6, d=384, heads=6, ffn=1536):
    return nn.Sequential(*[TransformerBlock(d, heads, ffn, pre_norm=False, gelu="none", fused_qkv=False)
                           for _ in range(layers)])


GPT2_VOCAB, GPT2_MAX_LEN = 8192, 512


class GPT2(nn.Module):
    def __init__(self, layers=4, d=256, heads=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(GPT2_VOCAB, d), nn.Embedding(GPT2_MAX_LEN, d)
        self.blocks = nn.Sequential(*[
            TransformerBlock(d, heads, 4 * d, pre_norm=True, gelu="tanh", fused_qkv=True,
                             causal=True, max_len=GPT2_MAX_LEN) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.blocks(self.wte(input_ids) + self.wpe(positions))
        return self.ln_f(x) @ self.wte.weight.t()  # LM head tied to the token embedding, as in GPT-2


def calibrated_cnn(arch, passes=8, batch=8):
    """A torchvision CNN with random weights and BatchNorm statistics measured on random input."""
    model = getattr(torchvision.models, arch)(weights=None).eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:  # only BN trains: dropout / stochastic depth must not disturb the statistics
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes
        bn.train()
    with torch.no_grad():
        for _ in range(passes if bns else 0):
            model(torch.randn(batch, 3, 224, 224))
    return model.eval()


def cnn(arch):
    return dict(build=lambda: calibrated_cnn(arch),
                inputs={"input": lambda g, n: torch.randn(n, 3, 224, 224, generator=g)},
                outputs=["logits"], dynamic={"input": {0: "batch"}, "logits": {0: "batch"}})


SEQ_DYNAMIC = {0: "batch", 1: "seq"}
MODELS = {
    "resnet50": cnn("resnet50"),
    "mobilenet_v2": cnn("mobilenet_v2"),
    "efficientnet_b0": cnn("efficientnet_b0"),
    "squeezenet1_1": cnn("squeezenet1_1"),
    "mlp": dict(build=MLP, inputs={"features": lambda g, n: torch.randn(n, 30, generator=g)},
                outputs=["logits"], dynamic={"features": {0: "batch"}, "logits": {0: "batch"}}),
    "encoder": dict(build=encoder, inputs={"embeddings": lambda g, n: torch.randn(n, 128, 384, generator=g)},
                    outputs=["last_hidden_state"],
                    dynamic={"embeddings": SEQ_DYNAMIC, "last_hidden_state": SEQ_DYNAMIC}),
    "gpt2": dict(build=GPT2,
                 inputs={"input_ids": lambda g, n: torch.randint(0, GPT2_VOCAB, (n, 50), generator=g)},
                 outputs=["logits"], dynamic={"input_ids": SEQ_DYNAMIC, "logits": SEQ_DYNAMIC}),
}


# ----------------------------------------------------------------------------- export

def export(model, inputs, spec, path):
    """Export at the highest opset in OPSETS that works; returns the opset used."""
    for opset in OPSETS:
        try:
            torch.onnx.export(model, tuple(inputs.values()), str(path), opset_version=opset,
                              do_constant_folding=True, input_names=list(inputs),
                              output_names=spec["outputs"], dynamic_axes=spec["dynamic"])
            if opset != OPSETS[0]:
                log(f"  note: opset {OPSETS[0]} failed, exported at opset {opset}")
            return opset
        except Exception as e:  # noqa: BLE001 - any exporter failure means: try a lower opset
            log(f"  export at opset {opset} failed: {type(e).__name__}: {e}")
    raise RuntimeError(f"could not export {path} at any of opsets {OPSETS}")


def graph_dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def tensor_meta(name, array, dims):
    return {"name": name, "shape": list(array.shape), "dims": dims, "dtype": str(array.dtype),
            "file": f"{name}.npy"}


def is_fresh(meta_path, batch, script_mtime):
    if not meta_path.is_file() or meta_path.stat().st_mtime <= script_mtime:
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return False
    d = meta_path.parent
    files = [d / "model.onnx"] + [d / "inputs" / t["file"] for t in meta["inputs"]] \
        + [d / "outputs" / t["file"] for t in meta["outputs"]]
    return meta.get("batch") == batch and all(f.is_file() for f in files)


def make(name, spec, out_dir, batch, script_mtime):
    d = out_dir / name
    if is_fresh(d / "meta.json", batch, script_mtime):
        log(f"[{name}] up to date, skipped")
        return {"name": name, "skipped": True, **json.loads((d / "meta.json").read_text())}
    start = time.perf_counter()
    (d / "inputs").mkdir(parents=True, exist_ok=True)
    (d / "outputs").mkdir(parents=True, exist_ok=True)
    seed = zlib.crc32(name.encode()) & 0x7FFFFFFF  # per name, so --only gives the same files
    torch.manual_seed(seed)
    log(f"[{name}] building (seed {seed})")
    model = spec["build"]().eval()
    gen = torch.Generator().manual_seed(seed + 1)
    inputs = {k: make_input(gen, batch) for k, make_input in spec["inputs"].items()}
    with torch.no_grad():
        outputs = model(*inputs.values())
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    outputs = {k: v.float().numpy() for k, v in zip(spec["outputs"], outputs)}
    for k, v in outputs.items():
        peak = float(np.abs(v).max())
        if not np.isfinite(v).all() or peak > MAX_ABS_OUTPUT:
            raise RuntimeError(f"{name}: output {k} is not sane (max |x| = {peak})")
        log(f"  {k}: shape {list(v.shape)}, max |x| {peak:.3g}, std {float(v.std()):.3g}")

    log(f"[{name}] exporting")
    with torch.no_grad():
        opset = export(model, inputs, spec, d / "model.onnx")
    proto = onnx.load(str(d / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)  # full_check also runs strict shape inference
    graph_inputs = {v.name: v for v in proto.graph.input}
    graph_outputs = {v.name: v for v in proto.graph.output}
    if list(graph_inputs) != list(inputs) or list(graph_outputs) != list(outputs):
        raise RuntimeError(f"{name}: graph has inputs {list(graph_inputs)} and outputs {list(graph_outputs)}")
    ops = Counter(n.op_type for n in proto.graph.node)

    for k, v in inputs.items():
        np.save(d / "inputs" / f"{k}.npy", v.numpy())
    for k, v in outputs.items():
        np.save(d / "outputs" / f"{k}.npy", v)
    meta = {
        "name": name, "batch": batch, "seed": seed, "opset": opset, "rtol": RTOL, "atol": ATOL,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "inputs": [tensor_meta(k, v.numpy(), graph_dims(graph_inputs[k])) for k, v in inputs.items()],
        "outputs": [tensor_meta(k, v, graph_dims(graph_outputs[k])) for k, v in outputs.items()],
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks the model done
    seconds = time.perf_counter() - start
    log(f"[{name}] done in {seconds:.1f} s, opset {opset}, {(d / 'model.onnx').stat().st_size / 2**20:.1f} MiB, "
        f"{sum(ops.values())} nodes: " + ", ".join(f"{op} {n}" for op, n in meta["ops"].items()))
    return {**meta, "skipped": False, "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (keep it outside the repo)")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(MODELS))
    parser.add_argument("--batch", type=int, default=1, help="batch size of the saved inputs (default 1)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown or args.batch < 1:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}" if unknown else "--batch must be >= 1")

    torch.set_num_threads(2)
    script_mtime = Path(__file__).stat().st_mtime
    results = [make(n, MODELS[n], args.out, args.batch, script_mtime) for n in names]
    log("\nmodel             time      size  opset  nodes")
    for r in results:
        size = (args.out / r["name"] / "model.onnx").stat().st_size / 2**20
        took = "skipped" if r["skipped"] else f"{r['seconds']:.1f} s"
        log(f"{r['name']:<16} {took:>8} {size:6.1f} MiB  {r['opset']:>3}  {sum(r['ops'].values()):>5}")


if __name__ == "__main__":
    main()
