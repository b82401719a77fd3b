"""The ONNX exporter: checked files, stamped metadata, and failures named by step."""

import onnx
import pytest
import torch
from torch import nn

from exporters.errors import ExportError
from exporters.onnx_export import OnnxOptions, export_onnx
from exporters.signature import Dim, TensorSpec

N = Dim("n", 2, 8, 64)


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x), x.sum(dim=1, keepdim=True)


def _export(tmp_path, inputs=(TensorSpec("x", (N, 4)),), outputs=(TensorSpec("y", (N, 3)), TensorSpec("s", (N, 1))), **kw):
    return export_onnx(Scale().eval(), (torch.randn(8, 4),), tmp_path / "m.onnx", component="toy", inputs=inputs, outputs=outputs, **kw)


def test_export_writes_a_checked_stamped_file(tmp_path):
    report = _export(tmp_path, metadata={"spec": "toy-spec"})
    model = onnx.load(report.path)
    onnx.checker.check_model(model, full_check=True)
    assert report.opset == 17 and report.ir_version <= 10
    assert "onnxruntime load" in report.steps and "signature" in report.steps
    assert model.producer_name == "pytest-awml"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["spec"] == "toy-spec" and meta["component"] == "toy" and meta["torch_version"] == torch.__version__
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim] == ["n", ""]


def test_signature_mismatch_names_the_step_and_the_tensor(tmp_path):
    with pytest.raises(ExportError) as info:
        _export(tmp_path, outputs=(TensorSpec("y", (N, 5)), TensorSpec("s", (N, 1))))
    assert info.value.step == "signature" and "output 'y' axis 1 is 3 in the graph, the spec says 5" in str(info.value)


def test_a_missing_dynamic_axis_is_caught(tmp_path):
    with pytest.raises(ExportError, match="axis 0 is 8 in the graph, not dynamic 'n'"):
        _export(tmp_path, inputs=(TensorSpec("x", (8, 4)),))


def test_an_export_crash_is_wrapped(tmp_path):
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    with pytest.raises(ExportError) as info:
        export_onnx(Broken(), (torch.zeros(2),), tmp_path / "b.onnx", component="broken",
                    inputs=(TensorSpec("x", (2,)),), outputs=(TensorSpec("y", (2,)),))
    assert info.value.component == "broken" and info.value.step == "torch.onnx.export" and "boom" in str(info.value)


def test_ir_version_cap(tmp_path):
    report = _export(tmp_path, options=OnnxOptions(opset=17, max_ir_version=8))
    assert onnx.load(report.path).ir_version <= 8
    with pytest.raises(ExportError, match="needs IR version 8 .* above max_ir_version=7"):
        _export(tmp_path, options=OnnxOptions(opset=17, max_ir_version=7))
