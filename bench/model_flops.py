#!/usr/bin/python3
"""Count the FLOPs (2 x multiply-accumulates) of an ONNX model's Conv, ConvTranspose, Gemm and MatMul nodes.

    model_flops.py MODEL.onnx [--batch N] [--seq N] [--json]

The graph inputs' dynamic dims are fixed first (the first dynamic dim of each input is the batch, a
dynamic dim at index 1 is --seq, default 128, any other is 1; the same rule as `deskml bench`), then
onnx.shape_inference gives every tensor's shape. Bias additions, activations and all other ops are
not counted; nodes inside subgraphs (If/Loop/Scan bodies) are not counted. Prints the total as a
plain number (or a JSON object with a per-op breakdown and the nodes whose shapes were unknown).
"""
import argparse
import json
import math
import os
import sys

try:
    import onnx
    from onnx import shape_inference
except ImportError:  # Debian's onnx is in /usr/bin/python3; another python3 may be first on PATH
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise


def fix_input_dims(model, batch, seq):
    initializers = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in initializers or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        first = True
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            value = batch if first else (seq if i == 1 else 1)
            first = False
            d.Clear()
            d.dim_value = value


def known_shapes(model):
    shapes = {}

    def add(vi):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims

    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        add(vi)
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    for node in model.graph.node:  # Constant nodes carry their tensor as an attribute
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    shapes[node.output[0]] = list(a.t.dims)
    return shapes


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def complete(*shapes):
    return all(s is not None and all(isinstance(d, int) and d >= 0 for d in s) for s in shapes)


def node_flops(node, shapes):
    """FLOPs of one node, or None when the shapes it needs are unknown."""
    get = lambda i: shapes.get(node.input[i]) if i < len(node.input) and node.input[i] else None
    out = shapes.get(node.output[0]) if node.output else None
    op = node.op_type
    if op == "Conv":
        w = get(1)
        if not complete(w, out):
            return None
        # out: [N, M, spatial...]; w: [M, C/group, k...]; every output element is C/group * prod(k) MACs.
        return 2 * math.prod(out) * math.prod(w[1:])
    if op == "ConvTranspose":
        x, w = get(0), get(1)
        if not complete(x, w):
            return None
        # x: [N, C, spatial...]; w: [C, M/group, k...]; every input element scatters M/group * prod(k) MACs.
        return 2 * math.prod(x) * math.prod(w[1:])
    if op == "Gemm":
        a, b = get(0), get(1)
        if not complete(a, b) or len(a) != 2 or len(b) != 2:
            return None
        m, k = (a[1], a[0]) if attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if attr(node, "transB", 0) else b[1]
        return 2 * m * n * k
    if op == "MatMul":
        a, b = get(0), get(1)
        if not complete(a, b) or not a or not b:
            return None
        k = a[-1]
        if out is not None and complete(out):
            return 2 * math.prod(out) * k
        # Broadcast by hand when inference left the output unknown.
        a2 = [1] + a if len(a) == 1 else a
        b2 = b + [1] if len(b) == 1 else b
        batch_a, batch_b = a2[:-2], b2[:-2]
        n = max(len(batch_a), len(batch_b))
        batch_a = [1] * (n - len(batch_a)) + batch_a
        batch_b = [1] * (n - len(batch_b)) + batch_b
        batch = math.prod(max(x, y) for x, y in zip(batch_a, batch_b))
        return 2 * batch * a2[-2] * b2[-1] * k
    return 0


def count(model_path, batch, seq):
    model = onnx.load(model_path, load_external_data=False)
    fix_input_dims(model, batch, seq)
    model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    shapes = known_shapes(model)
    total, by_op, unknown = 0, {}, []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        f = node_flops(node, shapes)
        if f is None:
            unknown.append(node.name or node.output[0])
            continue
        total += f
        by_op[node.op_type] = by_op.get(node.op_type, 0) + f
    return total, by_op, unknown


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128, help="value of a dynamic dim at index 1 (default 128)")
    parser.add_argument("--json", action="store_true", help="print a JSON object with a per-op breakdown")
    args = parser.parse_args()
    total, by_op, unknown = count(args.model, args.batch, args.seq)
    if unknown:
        print(f"model_flops: {len(unknown)} node(s) with unknown shapes not counted: {', '.join(unknown[:5])}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({"flops": total, "batch": args.batch, "by_op": by_op, "uncounted_nodes": unknown}))
    else:
        print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
