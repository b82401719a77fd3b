"""TensorRT-RTX: real engines built on the CPU from the exported graphs, and the seed's bug #4 against a
real builder (a bad profile fails in the harness by name first; the builder alone would give no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporters.errors import ExportError
from exporters.onnx_export import export_onnx
from exporters.signature import Dim, TensorSpec
from exporters.tensorrt_build import TENSORRT_RTX, EngineOptions, build_engine

MODULE = TENSORRT_RTX.module
rtx_unavailable, capability_problem = TENSORRT_RTX.unavailable, TENSORRT_RTX.capability_problem


def build_rtx_engine(onnx_path, engine_path, **arguments):
    return build_engine(onnx_path, engine_path, flavor=TENSORRT_RTX, **arguments)
from model_specs.centerpoint.spec import TINY_SPEC

pytestmark = pytest.mark.skipif(rtx_unavailable() is not None, reason=str(rtx_unavailable()))


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory) -> dict[str, tuple[Path, tuple[TensorSpec, ...]]]:
    folder = tmp_path_factory.mktemp("graphs")
    model = TINY_SPEC.build_model(None, 0)
    graphs = {}
    for component in TINY_SPEC.components:
        example = tuple(torch.zeros(t.at("opt")) for t in component.inputs)
        path = folder / f"{component.name}.onnx"
        export_onnx(component.extract(model).eval(), example, path, component=component.name, inputs=component.inputs,
                    outputs=component.outputs, options=component.onnx)
        graphs[component.name] = (path, component.inputs)
    return graphs


@pytest.mark.parametrize("name", ["pts_voxel_encoder", "pts_backbone_neck_head"])
def test_a_real_engine_is_built_on_the_cpu(tiny_graphs, tmp_path, name):
    path, inputs = tiny_graphs[name]
    report = build_rtx_engine(path, tmp_path / "e.engine", component=name, inputs=inputs, options=EngineOptions())
    assert report.size_bytes == (tmp_path / "e.engine").stat().st_size > 10_000
    assert report.coverage.rejected == () and report.coverage.layers > 10
    assert report.coverage.onnx_ops.get("Conv" if "backbone" in name else "MatMul", 0) > 0
    mapped = [layer for node, layers in report.coverage.node_layers.items() if node.startswith("/") for layer in layers]
    assert len(mapped) >= sum(report.coverage.onnx_ops.get(op, 0) for op in ("Conv", "MatMul"))  # every compute node became layers
    assert report.version.startswith("1.") and report.seconds > 0


BAD_PROFILES = [
    (TensorSpec("input_features", (3000, 32, 11)), r"axis 0 is dynamic \(num_voxels\) in the graph but the spec gives no min/opt/max"),
    (TensorSpec("input_features", (Dim("num_voxels", 500, 300, 100), 32, 11)), "need 1 <= min <= opt <= max"),
    (TensorSpec("input_features", (Dim("num_voxels", 100, 20000, 12000), 32, 11)), "need 1 <= min <= opt <= max"),
]


@pytest.mark.parametrize("spec, words", BAD_PROFILES)
def test_a_bad_profile_fails_in_the_harness_first_and_the_real_builder_would_give_no_engine(tiny_graphs, tmp_path, spec, words):
    path, _ = tiny_graphs["pts_voxel_encoder"]
    with pytest.raises(ExportError, match=words) as info:
        build_rtx_engine(path, tmp_path / "e.engine", component="enc", inputs=(spec,), options=EngineOptions())
    assert info.value.step == "tensorrt profile" and not (tmp_path / "e.engine").exists()
    # the same input given straight to TensorRT-RTX: no exception that names it, just no engine
    trt = __import__(MODULE)
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(path))
    config = builder.create_builder_config()
    dim = spec.shape[0]
    if isinstance(dim, Dim):
        profile = builder.create_optimization_profile()
        profile.set_shape("input_features", (dim.min, 32, 11), (dim.opt, 32, 11), (dim.max, 32, 11))
        config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is None


def test_a_graph_the_parser_rejects_names_the_node(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], name="custom_node", domain="ai.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.example", 1)])
    onnx.save(model, tmp_path / "g.onnx")
    with pytest.raises(ExportError, match="rejected 1 node.*custom_node .NoSuchOp.") as info:
        build_rtx_engine(tmp_path / "g.onnx", tmp_path / "g.engine", component="g", inputs=(TensorSpec("x", (1, 4)),),
                         options=EngineOptions())
    assert info.value.step == "tensorrt-rtx parse"


def test_the_capabilities_rtx_engines_run_on():
    assert capability_problem(8, 9) is None and capability_problem(12, 0) is None
    assert "compute capability 9.0" in capability_problem(9, 0)  # H100/H200: engines build but do not run
