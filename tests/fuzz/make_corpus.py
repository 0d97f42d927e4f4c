#!/usr/bin/python3
"""Writes the seed corpus for deskml's fuzz targets: small valid models that touch
the loader's paths (initializers in raw and typed fields, attributes of every kind,
If/Loop/Scan subgraphs reading outer values, external-data references, several
dtypes and opsets) and a few .npy files.

Usage: make_corpus.py MODEL_DIR [NPY_DIR]
Needs Debian's python3-onnx and python3-numpy (/usr/bin/python3, not a pyenv).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, I64, B, STR = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array, typed=False):
    """An initializer in raw_data (the exporters' default) or in the typed field."""
    array = np.asarray(array)
    if not typed:
        return numpy_helper.from_array(array, name)
    if hasattr(helper, "np_dtype_to_tensor_dtype"):  # onnx >= 1.13
        dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
    else:
        dtype = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype]
    return helper.make_tensor(name, dtype, array.shape, array.flatten().tolist())


def model(nodes, inputs, outputs, inits=(), opset=17, extra_opsets=(), name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="deskml-corpus")
    m.ir_version = 8
    return m


def unary(op, elem=F, shape=(2, 3), opset=17, **attrs):
    return model([helper.make_node(op, ["x"], ["y"], **attrs)], [vi("x", elem, shape)], [vi("y", elem, None)],
                 opset=opset)


def binary(op, elem=F, shape=(2, 3), out_elem=None):
    return model([helper.make_node(op, ["a", "b"], ["y"])], [vi("a", elem, shape), vi("b", elem, shape)],
                 [vi("y", out_elem or elem, None)])


def subgraph(nodes, inputs, outputs, name):
    return helper.make_graph(nodes, name, inputs, outputs)


def corpus():
    m = {}
    rng = np.random.default_rng(0)
    w23 = rng.standard_normal((2, 3)).astype(np.float32)

    # Plain ops over every family the CPU backend registers.
    for op in ["Identity", "Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Sqrt", "Floor", "Softplus", "Erf"]:
        m[f"unary_{op.lower()}"] = unary(op)
    for op in ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]:
        m[f"binary_{op.lower()}"] = binary(op)
    for op in ["Equal", "Less", "Greater"]:
        m[f"compare_{op.lower()}"] = binary(op, out_elem=B)
    m["and_bool"] = binary("And", elem=B)
    m["add_int64"] = binary("Add", elem=I64)
    m["add_double"] = binary("Add", elem=TensorProto.DOUBLE)
    m["add_float16"] = binary("Add", elem=TensorProto.FLOAT16)
    m["add_int8"] = binary("Add", elem=TensorProto.INT8)
    m["add_uint8"] = binary("Add", elem=TensorProto.UINT8)
    m["softmax"] = unary("Softmax", axis=-1)
    m["leakyrelu"] = unary("LeakyRelu", alpha=0.2)
    m["cast_to_int"] = unary("Cast", to=TensorProto.INT32)
    m["reduce_mean"] = unary("ReduceMean", axes=[1], keepdims=1, opset=13)
    m["reduce_sum"] = model([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
                            [vi("x", F, (2, 3))], [vi("y", F, None)], [init("axes", np.array([0], np.int64))])
    m["argmax"] = model([helper.make_node("ArgMax", ["x"], ["y"], axis=1)], [vi("x", F, (2, 3))],
                        [vi("y", I64, None)])
    m["transpose"] = unary("Transpose", perm=[1, 0])
    m["flatten"] = unary("Flatten", shape=(2, 3, 4), axis=2)

    # Initializers: raw and typed fields, int64 shape inputs.
    m["add_raw_init"] = model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, (2, 3))],
                              [vi("y", F, None)], [init("w", w23)])
    m["add_typed_init"] = model([helper.make_node("Mul", ["x", "w"], ["y"])], [vi("x", F, (2, 3))],
                                [vi("y", F, None)], [init("w", w23, typed=True)])
    m["reshape"] = model([helper.make_node("Reshape", ["x", "s"], ["y"])], [vi("x", F, (2, 3))], [vi("y", F, None)],
                         [init("s", np.array([3, -1], np.int64), typed=True)])
    m["slice"] = model([helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])], [vi("x", F, (4, 5))],
                       [vi("y", F, None)], [init("st", np.array([1, 0], np.int64)),
                                            init("en", np.array([3, 100], np.int64)),
                                            init("ax", np.array([0, 1], np.int64))])
    m["concat_unsqueeze"] = model(
        [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]), helper.make_node("Concat", ["u", "u"], ["y"], axis=0)],
        [vi("x", F, (2, 3))], [vi("y", F, None)], [init("ax", np.array([0], np.int64))])
    m["squeeze_split"] = model(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1), helper.make_node("Squeeze", ["a"], ["y"])],
        [vi("x", F, (2, 2))], [vi("y", F, None), vi("b", F, None)], opset=11)
    m["expand_tile"] = model(
        [helper.make_node("Expand", ["x", "s"], ["e"]), helper.make_node("Tile", ["e", "r"], ["y"])],
        [vi("x", F, (1, 3))], [vi("y", F, None)],
        [init("s", np.array([2, 3], np.int64)), init("r", np.array([1, 2], np.int64))])
    m["gather"] = model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], [vi("x", F, (3, 2))],
                        [vi("y", F, None)], [init("i", np.array([2, 0, 1], np.int64))])
    m["where_shape"] = model(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["sf"], to=F),
         helper.make_node("Greater", ["x", "z"], ["c"]), helper.make_node("Where", ["c", "x", "z"], ["y"])],
        [vi("x", F, (2, 3))], [vi("y", F, None), vi("sf", F, None)], [init("z", np.zeros((1,), np.float32))])
    m["constant_attrs"] = model(
        [helper.make_node("Constant", [], ["c1"], value_float=2.5),
         helper.make_node("Constant", [], ["c2"], value_ints=[1, 2, 3]),
         helper.make_node("Constant", [], ["c3"], value=numpy_helper.from_array(w23)),
         helper.make_node("Add", ["x", "c3"], ["y"])],
        [vi("x", F, (2, 3))], [vi("y", F, None), vi("c1", F, None), vi("c2", I64, None)])
    m["constant_of_shape_range"] = model(
        [helper.make_node("ConstantOfShape", ["s"], ["z"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
         helper.make_node("Range", ["a", "b", "d"], ["r"])],
        [], [vi("z", F, None), vi("r", I64, None)],
        [init("s", np.array([2, 2], np.int64)), init("a", np.array(0, np.int64)), init("b", np.array(5, np.int64)),
         init("d", np.array(2, np.int64))])

    # Dense layers.
    m["matmul_gemm"] = model(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Gemm", ["h", "w2", "b"], ["y"], transB=1, alpha=0.5)],
        [vi("x", F, (2, 4))], [vi("y", F, None)],
        [init("w", rng.standard_normal((4, 3)).astype(np.float32)),
         init("w2", rng.standard_normal((2, 3)).astype(np.float32)), init("b", np.ones(2, np.float32))])
    m["conv_pool"] = model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("GlobalAveragePool", ["p"], ["y"])],
        [vi("x", F, (1, 2, 5, 5))], [vi("y", F, None)],
        [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)), init("b", np.zeros(3, np.float32))])
    # A fire module with 16-channel multiples: the blocked-layout pass (nChw16c,
    # deskml.Reorder, blocked FusedConv and pool) and Winograd-free 3x3s.
    w16 = lambda k: (rng.standard_normal((16, 16, k, k)) * 0.1).astype(np.float32)
    m["fire_module_blocked"] = model(
        [helper.make_node("Conv", ["x", "ws", "b"], ["s0"]), helper.make_node("Relu", ["s0"], ["s"]),
         helper.make_node("Conv", ["s", "w1", "b"], ["e1"]),
         helper.make_node("Conv", ["s", "w3", "b"], ["e3"], pads=[1, 1, 1, 1]),
         helper.make_node("Concat", ["e1", "e3"], ["c"], axis=1),
         helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        [vi("x", F, (1, 16, 6, 6))], [vi("y", F, None)],
        [init("ws", w16(1)), init("w1", w16(1)), init("w3", w16(3)), init("b", np.zeros(16, np.float32))])
    # The layout ops as a model may spell them itself.
    m["deskml_reorder"] = model(
        [helper.make_node("Reorder", ["x"], ["b"], domain="deskml", to="nChw16c"),
         helper.make_node("Reorder", ["b"], ["y"], domain="deskml", to="nhwc")],
        [vi("x", F, (1, 2, 2, 16))], [vi("y", F, None)], extra_opsets=[("deskml", 1)])
    m["batchnorm"] = model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "mu", "var"], ["y"], epsilon=1e-5)],
        [vi("x", F, (1, 2, 3, 3))], [vi("y", F, None)],
        [init("s", np.ones(2, np.float32)), init("b", np.zeros(2, np.float32)), init("mu", np.zeros(2, np.float32)),
         init("var", np.ones(2, np.float32))])
    m["layernorm"] = model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)],
                           [vi("x", F, (2, 3))], [vi("y", F, None)],
                           [init("s", np.ones(3, np.float32)), init("b", np.zeros(3, np.float32))])
    m["lstm"] = model(
        [helper.make_node("LSTM", ["x", "w", "r"], ["y", "h"], hidden_size=2)],
        [vi("x", F, (3, 1, 2))], [vi("y", F, None), vi("h", F, None)],
        [init("w", rng.standard_normal((1, 8, 2)).astype(np.float32)),
         init("r", rng.standard_normal((1, 8, 2)).astype(np.float32))])
    m["quantize"] = model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        [vi("x", F, (2, 3))], [vi("y", F, None)],
        [init("s", np.array(0.1, np.float32)), init("z", np.array(3, np.uint8))])
    m["resize"] = model(
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest")],
        [vi("x", F, (1, 1, 2, 2))], [vi("y", F, None)], [init("sc", np.array([1, 1, 2, 2], np.float32))])

    # Control flow: subgraphs reading outer-scope values.
    then_g = subgraph([helper.make_node("Add", ["x", "w"], ["t"])], [], [vi("t", F, None)], "then")
    else_g = subgraph([helper.make_node("Sub", ["x", "w"], ["e"])], [], [vi("e", F, None)], "else")
    m["if_outer_scope"] = model(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
        [vi("x", F, (2, 3)), vi("c", B, ())], [vi("y", F, None)], [init("w", w23)])
    inner_then = subgraph([helper.make_node("Relu", ["x"], ["it"])], [], [vi("it", F, None)], "inner_then")
    inner_else = subgraph([helper.make_node("Neg", ["x"], ["ie"])], [], [vi("ie", F, None)], "inner_else")
    outer_then = subgraph([helper.make_node("If", ["c"], ["ot"], then_branch=inner_then, else_branch=inner_else)],
                          [], [vi("ot", F, None)], "outer_then")
    m["if_nested"] = model(
        [helper.make_node("If", ["c"], ["y"], then_branch=outer_then, else_branch=else_g)],
        [vi("x", F, (2, 3)), vi("c", B, ())], [vi("y", F, None)], [init("w", w23)])
    body = subgraph(
        [helper.make_node("Add", ["s_in", "x"], ["s_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Mul", ["s_out", "x"], ["scan"])],
        [vi("i", I64, ()), vi("cond_in", B, ()), vi("s_in", F, None)],
        [vi("cond_out", B, ()), vi("s_out", F, None), vi("scan", F, None)], "body")
    m["loop"] = model(
        [helper.make_node("Loop", ["m", "cond", "s0"], ["s_final", "scans"], body=body)],
        [vi("x", F, (2,)), vi("s0", F, (2,))], [vi("s_final", F, None), vi("scans", F, None)],
        [init("m", np.array(3, np.int64)), init("cond", np.array(True))], opset=13)
    scan_body = subgraph(
        [helper.make_node("Add", ["acc_in", "row"], ["acc_out"]), helper.make_node("Identity", ["acc_out"], ["o"])],
        [vi("acc_in", F, (2,)), vi("row", F, (2,))], [vi("acc_out", F, (2,)), vi("o", F, (2,))], "scan_body")
    m["scan"] = model(
        [helper.make_node("Scan", ["acc0", "xs"], ["acc", "ys"], body=scan_body, num_scan_inputs=1)],
        [vi("acc0", F, (2,)), vi("xs", F, (3, 2))], [vi("acc", F, None), vi("ys", F, None)])

    # Sequences, strings, optional inputs.
    m["sequence"] = model(
        [helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
         helper.make_node("SequenceAt", ["s", "i"], ["y"]),
         helper.make_node("ConcatFromSequence", ["s"], ["c"], axis=0)],
        [vi("a", F, (2,)), vi("b", F, (2,))], [vi("y", F, None), vi("c", F, None)],
        [init("i", np.array(1, np.int64))])
    m["strings"] = model(
        [helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="UPPER")],
        [vi("x", STR, (2,))], [vi("y", STR, None)])
    m["string_init_equal"] = model(
        [helper.make_node("Equal", ["x", "w"], ["y"])], [vi("x", STR, (2,))], [vi("y", B, None)],
        [helper.make_tensor("w", STR, (2,), [b"a", b"b"])])
    m["optional_input_default"] = model(
        [helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, (2, 3)), vi("w", F, (2, 3))], [vi("y", F, None)],
        [init("w", w23)])

    # External data (refused for in-memory models: the fuzzer learns the structure).
    ext = model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", F, (2, 3))], [vi("y", F, None)])
    t = ext.graph.initializer.add()
    t.name, t.data_type = "w", F
    t.dims.extend([2, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "weights.bin"), ("offset", "0"), ("length", "24")]:
        e = t.external_data.add()
        e.key, e.value = k, v
    m["external_data_ref"] = ext

    # Custom domains, old opsets, symbolic dims, value_info, metadata.
    custom = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, (2, 3))], [vi("y", F, None)],
                   extra_opsets=[("com.microsoft", 1)], opset=11)
    custom.graph.value_info.extend([vi("y", F, (2, 3))])
    helper.set_model_props(custom, {"author": "deskml", "purpose": "fuzz seed"})
    m["opset11_metadata"] = custom
    m["symbolic_dims"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, ("N", 3))],
                               [vi("y", F, ("N", 3))])
    m["opset7_add"] = model([helper.make_node("Add", ["a", "b"], ["y"])], [vi("a", F, (2,)), vi("b", F, (2,))],
                            [vi("y", F, None)], opset=7)
    return m


def npy_corpus():
    rng = np.random.default_rng(1)
    return {
        "f32_2x3": rng.standard_normal((2, 3)).astype(np.float32),
        "f64_scalar": np.array(3.5),
        "i64_vec": np.arange(5, dtype=np.int64),
        "u8_empty": np.zeros((0, 4), np.uint8),
        "bool": np.array([True, False, True]),
        "f16": np.ones((2, 2), np.float16),
        "i8_3d": np.arange(8, dtype=np.int8).reshape(2, 2, 2),
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_dir = sys.argv[1]
    os.makedirs(model_dir, exist_ok=True)
    for name, m in sorted(corpus().items()):
        with open(os.path.join(model_dir, f"seed_{name}.onnx"), "wb") as f:
            f.write(m.SerializeToString())
    print(f"{len(corpus())} models -> {model_dir}")
    if len(sys.argv) > 2:
        npy_dir = sys.argv[2]
        os.makedirs(npy_dir, exist_ok=True)
        for name, a in npy_corpus().items():
            np.save(os.path.join(npy_dir, f"seed_{name}.npy"), a)
        print(f"{len(npy_corpus())} arrays -> {npy_dir}")


if __name__ == "__main__":
    main()
