"""Small ONNX graphs for the int8 tests: a two-conv net, and QDQ graphs broken the ways TensorRT refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def conv_net(path: Path, opset: int = 17) -> Path:
    """input [1, 3, 16, 16] → Conv(3→8, 3x3) → Relu → Conv(8→2, 1x1) → output, with biases."""
    weights = {"w1": RNG.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "b1": RNG.standard_normal(8).astype(np.float32) * 0.1,
               "w2": RNG.standard_normal((2, 8, 1, 1)).astype(np.float32) * 0.3, "b2": RNG.standard_normal(2).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["output"], name="conv2")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2, 16, 16])],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def feeds(count: int = 4) -> list[dict[str, np.ndarray]]:
    return [{"input": RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(count)]


def qdq(weight_scales: np.ndarray, *, axis: int = 0, zero: int = 0, q_feeds_relu: bool = False, opset: int = 17,
        int32_bias: bool = False) -> onnx.ModelProto:
    """input → Q → DQ → Conv(weight DQ'd per channel) → output; each keyword breaks one TensorRT rule."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "w_q")
    inits = [w, numpy_helper.from_array(weight_scales.astype(np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(weight_scales.shape, np.int8), "w_z"),
             numpy_helper.from_array(np.array(0.1, np.float32), "x_s"), numpy_helper.from_array(np.array(zero, np.int8), "x_z")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "x_s", "x_z"], ["x_q"], name="input_q"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="weight_dq", axis=axis)]
    if q_feeds_relu:
        nodes += [helper.make_node("Relu", ["x_q"], ["x"], name="relu_on_int8")]
    else:
        nodes += [helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x"], name="input_dq")]
    conv_inputs = ["x", "w"]
    if int32_bias:
        inits += [numpy_helper.from_array(np.ones(4, np.int32), "b_q"), numpy_helper.from_array(np.full(4, 0.01, np.float32), "b_s"),
                  numpy_helper.from_array(np.zeros(4, np.int32), "b_z")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], name="bias_dq", axis=0))
        conv_inputs.append("b")
    nodes.append(helper.make_node("Conv", conv_inputs, ["output"], name="conv", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def conv_chain(path: Path, layers: int, channels: int = 16, size: int = 512) -> Path:
    """input [1, C, S, S] → (1x1 Conv → Relu) × ``layers`` → output: many same-sized tensors, one alive at a time when
    the graph runs in order (C·S·S·4 bytes each: 16 MiB at the defaults)."""
    nodes, weights, tensor = [], [], "input"
    for i in range(layers):
        weights.append(numpy_helper.from_array((RNG.standard_normal((channels, channels, 1, 1)) * 0.25).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("Conv", [tensor, f"w{i}"], [f"c{i}"], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        tensor = f"r{i}"
    shape = [1, channels, size, size]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, shape)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
