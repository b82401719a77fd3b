"""The TensorRT layer's pure parts, tested without TensorRT: profiles, validation, keys, buffer plans.

The TensorRT build and runner themselves need `tensorrt` and a GPU; their tests are the generated
`test_export[.../tensorrt-*]`, `test_parity[.../tensorrt-cuda0-*]`… which skip with the reason where
tensorrt does not import (see the README for running them)."""

import pytest

from exporters.errors import ExportError
from exporters.signature import Dim, TensorSpec
from exporters.tensorrt_build import TENSORRT, TENSORRT_RTX, EngineOptions, build_engine, derive_profile, engine_key_parts, onnx_input_shapes
from model_specs.centerpoint.spec import SPEC, TINY_SPEC
from pytest_awml.device import Device, Precision
from pytest_awml.errors import DataError
from pytest_awml.builders.tensorrt import options_for
from pytest_awml.runners.tensorrt import TensorRTBackend, plan_output_shapes, tensorrt_unavailable

N = Dim("num_voxels", 1000, 20000, 96000)
ENCODER = TensorSpec("input_features", (N, 32, 11))


def test_profile_from_the_spec_dims():
    profile = derive_profile("enc", {"input_features": ["num_voxels", 32, 11]}, [ENCODER])
    assert profile == {"input_features": ((1000, 32, 11), (20000, 32, 11), (96000, 32, 11))}


def test_full_size_centerpoint_profiles():
    encoder, head = SPEC.components
    assert derive_profile("e", {"input_features": ["num_voxels", 32, 11]}, encoder.inputs)["input_features"][2] == (96000, 32, 11)
    assert derive_profile("h", {"spatial_features": [1, 32, 1020, 1020]}, head.inputs) == {
        "spatial_features": ((1, 32, 1020, 1020),) * 3}


@pytest.mark.parametrize(
    "graph, specs, words",
    [
        ({"input_features": ["num_voxels", 32, 11]}, [], "graph input 'input_features' has no TensorSpec"),
        ({"input_features": ["num_voxels", 32, 11]}, [TensorSpec("input_features", (1000, 32, 11))],
         "axis 0 is dynamic (num_voxels) in the graph but the spec gives no min/opt/max"),
        ({"input_features": [5000, 32, 11]}, [ENCODER], "axis 0 is fixed to 5000 in the graph but the spec declares it dynamic"),
        ({"input_features": ["n", 32, 10]}, [ENCODER], "axis 2 is 10 in the graph, the spec says 11"),
        ({"input_features": ["n", 32]}, [ENCODER], "the graph has rank 2, the spec 3"),
        ({"x": ["n", 32, 11]}, [ENCODER], "TensorSpec 'input_features' names no graph input"),
        ({"input_features": ["n", 32, 11]}, [TensorSpec("input_features", (Dim("n", 10, 5, 20), 32, 11))], "min <= opt <= max"),
    ],
)
def test_profile_validation_names_the_input(graph, specs, words):
    with pytest.raises(ExportError) as info:
        derive_profile("centerpoint/pts_voxel_encoder", graph, specs)
    assert info.value.step == "tensorrt profile" and words in str(info.value)


def test_onnx_input_shapes_reads_symbolic_dims(tmp_path):
    import torch

    from exporters.onnx_export import export_onnx

    export_onnx(torch.nn.Linear(11, 4), (torch.zeros(8, 11),), tmp_path / "m.onnx", component="toy",
                inputs=(TensorSpec("x", (Dim("n", 2, 8, 64), 11)),), outputs=(TensorSpec("y", (Dim("n", 2, 8, 64), 4)),))
    assert onnx_input_shapes(tmp_path / "m.onnx") == {"x": ["n", 11]}


def test_engine_keys_change_with_every_dependency():
    fp16 = EngineOptions(fp16=True)
    base = engine_key_parts("abc", fp16, "10.7.0", "NVIDIA H100 80GB HBM3")
    assert engine_key_parts("abc", fp16, "10.7.0", "NVIDIA H100 80GB HBM3") == base
    for other in (engine_key_parts("abd", fp16, "10.7.0", "NVIDIA H100 80GB HBM3"),
                  engine_key_parts("abc", EngineOptions(), "10.7.0", "NVIDIA H100 80GB HBM3"),
                  engine_key_parts("abc", fp16, "10.8.0", "NVIDIA H100 80GB HBM3"),
                  engine_key_parts("abc", fp16, "10.7.0", "NVIDIA H200"),
                  engine_key_parts("abc", fp16, "10.7.0", None)):
        assert other != base


def test_policies():
    assert [(o.fp16, o.tf32) for o in map(options_for, Precision)] == [(False, False), (True, False), (False, True), (False, False)]
    assert [(o.fp16, o.tf32) for o in (options_for(p, TENSORRT_RTX) for p in Precision)] == [(False, False), (False, False), (False, True), (False, False)]
    assert "has no fp16 flag" in " ".join(EngineOptions(fp16=True).problems(TENSORRT_RTX)) and not EngineOptions(fp16=True).problems(TENSORRT)
    assert EngineOptions(fp16=True, strongly_typed=True).problems(TENSORRT) and EngineOptions(workspace_bytes=0).problems(TENSORRT)


def test_output_buffer_plan_binds_dims_from_inputs():
    encoder = SPEC.components[0]
    assert plan_output_shapes(encoder.inputs, encoder.outputs, {"input_features": (12345, 32, 11)}) == {"pillar_features": (12345, 1, 32)}
    head = TINY_SPEC.components[1]
    assert plan_output_shapes(head.inputs, head.outputs, {"spatial_features": (1, 32, 128, 128)})["heatmap"] == (1, 5, 64, 64)
    a, b = TensorSpec("a", (Dim("n", 1, 2, 3),)), TensorSpec("b", (Dim("n", 1, 2, 3),))
    with pytest.raises(DataError, match="dim 'n' is 2 in one input and 3 in 'b'"):
        plan_output_shapes([a, b], [], {"a": (2,), "b": (3,)})


@pytest.mark.skipif(tensorrt_unavailable() is None, reason="tensorrt is importable here: the skip reason is not shown")
def test_without_tensorrt_the_backend_says_why():
    reason = TensorRTBackend().unavailable_reason(Device.parse("cuda"), Precision.FP16)
    assert reason.startswith("tensorrt not importable: ")



@pytest.mark.skipif(tensorrt_unavailable() is None, reason="tensorrt is importable here")
def test_the_build_validates_before_it_needs_tensorrt(tmp_path):
    import torch

    from exporters.onnx_export import export_onnx

    spec = TensorSpec("x", (Dim("n", 2, 8, 64), 11))
    export_onnx(torch.nn.Linear(11, 4), (torch.zeros(8, 11),), tmp_path / "m.onnx", component="toy", inputs=(spec,),
                outputs=(TensorSpec("y", (Dim("n", 2, 8, 64), 4)),))
    with pytest.raises(ExportError, match="step 'tensorrt profile'"):  # a bad profile is caught first
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", flavor=TENSORRT, component="toy", inputs=(TensorSpec("x", (8, 11)),),
                     options=EngineOptions(), timing_cache=tmp_path / "cache")
    with pytest.raises(ExportError, match="step 'tensorrt import': tensorrt not importable"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", flavor=TENSORRT, component="toy", inputs=(spec,), options=EngineOptions(),
                     timing_cache=tmp_path / "cache")
