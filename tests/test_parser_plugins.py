"""Standard ONNX ops that TensorRT's parser builds from its plugin library (``Component.parser_plugins``).

FRNet's scatter-max exports as ScatterElements with a reduction: TensorRT parses it through its library's
ScatterElements creator, TensorRT-RTX (no plugin library) rejects it without naming the node. The spec declares the
need, the export proves the declaration, and a runtime whose registry lacks the creator skips with the reason.
"""

from __future__ import annotations

import pytest
import torch

from exporters.errors import ExportError
from exporters.onnx_export import export_onnx
from exporters.plugins import parser_plugin_ops
from exporters.tensorrt_build import TENSORRT_RTX
from model_specs.frnet.spec import TINY_SPEC
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend
from pytest_awml.spec import TensorSpec


class _Scatter(torch.nn.Module):
    def __init__(self, reduce: str | None) -> None:
        super().__init__()
        self.reduce = reduce

    def forward(self, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(4)
        if self.reduce is None:
            return out.scatter(0, index, values)
        return out.scatter_reduce(0, index, values, reduce=self.reduce, include_self=True)


def _export(tmp_path, reduce: str | None, declared: tuple[str, ...]):
    example = (torch.rand(6), torch.tensor([0, 1, 1, 3, 2, 0]))
    return export_onnx(_Scatter(reduce), example, tmp_path / "s.onnx", component="scatter",
                       inputs=(TensorSpec("values", (6,)), TensorSpec("index", (6,), "int64")),
                       outputs=(TensorSpec("out", (4,)),), parser_plugins=declared)


@pytest.mark.parametrize("reduce, needed", [("amax", ("ScatterElements",)), ("sum", ("ScatterElements",)), (None, ())])
def test_a_scatter_with_a_reduction_needs_the_library_creator_and_a_plain_one_does_not(tmp_path, reduce, needed):
    _export(tmp_path, reduce, needed)
    assert parser_plugin_ops(tmp_path / "s.onnx") == needed


def test_an_undeclared_library_plugin_fails_the_export_by_name(tmp_path):
    with pytest.raises(ExportError, match=r"step 'plugins'.*\['ScatterElements'\].*declares \[\]"):
        _export(tmp_path, "amax", ())
    with pytest.raises(ExportError, match=r"step 'plugins'.*\[\].*declares \['ScatterElements'\]"):
        _export(tmp_path, None, ("ScatterElements",))


def test_frnet_declares_its_scatter_max_and_tensorrt_rtx_skips_it_by_name():
    (component,) = TINY_SPEC.components
    assert component.parser_plugins == ("ScatterElements",)
    assert OnnxRuntimeBackend().parser_plugins_unavailable(component.parser_plugins) is None
    if TENSORRT_RTX.unavailable():
        pytest.skip(TENSORRT_RTX.unavailable())
    reason = TENSORRT_RTX.plugins_missing(component.parser_plugins)
    assert reason is not None and "no ScatterElements plugin" in reason
