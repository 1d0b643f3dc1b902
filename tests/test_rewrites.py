"""Exact ONNX graph rewrites (edgecnn/onnx_graph/rewrites.py): the rewritten graph computes the same function in
ONNX Runtime, keeps node names and metadata, and leaves alone what it does not apply to."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.onnx_graph.rewrites import global_average_pools, space_to_depth_stem


def _stem_graph(c: int, size: int, k: int, pads: list[int], stride: int = 2, batch: object = 1):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, c, k, k)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    conv = helper.make_node(
        "Conv", ["input", "w", "b"], ["y"], name="stem_conv", kernel_shape=[k, k], strides=[stride] * 2, pads=pads
    )
    entry = conv.metadata_props.add()
    entry.key, entry.value = "pkg.torch.onnx.name_scopes", "['', 'stem', 'conv']"
    relu = helper.make_node("Relu", ["y"], ["logits"], name="act")
    graph = helper.make_graph(
        [conv, relu],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, c, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize(
    ("k", "pads", "size"),
    [
        (3, [1, 1, 1, 1], 32),  # MobileNet / EfficientNet stems
        (3, [0, 0, 1, 1], 32),  # TF "SAME" on an even input (EfficientNet-Lite): pad only after
        (5, [2, 2, 2, 2], 16),
        (4, [1, 1, 1, 1], 16),
        (2, [0, 0, 0, 0], 16),
        (3, [0, 0, 0, 0], 16),
        (7, [3, 2, 3, 2], 24),  # asymmetric, different per axis
    ],
)
def test_space_to_depth_stem_is_the_same_function(k, pads, size):
    model = _stem_graph(3, size, k, pads)
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"  # dynamic batch is fine
    model = onnx.shape_inference.infer_shapes(model)  # value_info as an export has it, the weight's included
    model.graph.value_info.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 3, k, k]))
    want = _run(model, x)
    assert space_to_depth_stem(model.graph) == 1
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["SpaceToDepth", "Conv", "Relu"]
    conv = model.graph.node[1]
    assert conv.name == "stem_conv" and {a.name: a.ints for a in conv.attribute}["strides"] == [1, 1]
    assert numpy_helper.to_array(model.graph.initializer[0]).shape[1] == 12
    # the stem's layer travels with both nodes (per-layer views count the SpaceToDepth as the stem's)
    assert all(n.metadata_props[0].value == "['', 'stem', 'conv']" for n in model.graph.node[:2])
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(model, strict_mode=True), full_check=True)
    got = _run(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("c", "size", "stride"),
    [(16, 32, 2), (3, 31, 2), (3, 32, 1)],  # not an image stem, odd size, stride 1
)
def test_space_to_depth_stem_leaves_other_convs_alone(c, size, stride):
    model = _stem_graph(c, size, 3, [1, 1, 1, 1], stride=stride)
    before = model.SerializeToString()
    assert space_to_depth_stem(model.graph) == 0
    assert model.SerializeToString() == before


def test_global_average_pool_replaces_spatial_reduce_mean_only():
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    chan = numpy_helper.from_array(np.array([1], np.int64), "chan")
    nodes = [
        helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], name="pool", keepdims=1),
        helper.make_node("ReduceMean", ["input", "chan"], ["mean_c"], name="over_channels", keepdims=1),
        helper.make_node("Mul", ["pooled", "mean_c"], ["logits"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 5, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [axes, chan],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 6)).astype(np.float32)
    want = _run(model, x)
    assert global_average_pools(model.graph) == 1
    assert [(n.op_type, n.name) for n in model.graph.node] == [
        ("GlobalAveragePool", "pool"),
        ("ReduceMean", "over_channels"),
        ("Mul", "mul"),
    ]
    assert [t.name for t in model.graph.initializer] == ["chan"]  # the pool's axes are gone, the other's stay
    np.testing.assert_allclose(_run(model, x), want, rtol=1e-6, atol=1e-6)
