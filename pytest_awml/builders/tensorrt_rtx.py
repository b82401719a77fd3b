"""The ``tensorrt-rtx-<precision>`` formats: a TensorRT-RTX engine built on the CPU by
:func:`exporters.tensorrt_rtx_build.build_rtx_engine` from the component's ONNX file (``fp32``,
``tf32``: the fp32 graph, TF32 allowed for ``tf32``) or its fp16 graph (``fp16``: the network is
strongly typed, its precision comes from the graph). The engine needs no GPU to build; it is keyed
on the graph, the options and the TensorRT-RTX version, not on a GPU model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.tensorrt_rtx_build import RtxOptions, build_rtx_engine, plugins_missing, rtx_unavailable
from pytest_awml.builders.base import ArtifactBuilder, BuildContext
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx_fp16 import FORMAT as ONNX_FP16
from pytest_awml.builders.onnx_fp16 import converter_unavailable
from pytest_awml.device import Device, Precision
from pytest_awml.provenance import package_version
from pytest_awml.spec import Component


def rtx_format(precision: Precision) -> str:
    return f"tensorrt-rtx-{precision.value}"


def graph_format(precision: Precision) -> str:
    """The ONNX artifact an engine of ``precision`` is built from."""
    return ONNX_FP16 if precision is Precision.FP16 else ONNX


class RtxEngineBuilder(ArtifactBuilder):
    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self.format = rtx_format(precision)
        self.options = RtxOptions(tf32=precision is Precision.TF32)

    def unavailable_reason(self, device: Device) -> str | None:
        return rtx_unavailable() or (converter_unavailable() if self.precision is Precision.FP16 else None)

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return plugins_missing(plugins)

    def filename(self, component: Component) -> str:
        return f"{component.name}.rtx-{self.precision.value}.engine"

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        return {"onnx_sha256": context.artifact(graph_format(self.precision)).sha256, **self.options.key(),
                "tensorrt_rtx": package_version("tensorrt-rtx-cu13-bindings")}

    def write(self, context: BuildContext, path: Path) -> dict[str, Any]:
        graph = context.artifact(graph_format(self.precision))
        report = build_rtx_engine(graph.path, path, component=context.label, inputs=context.component.inputs, options=self.options)
        return {"builder": f"tensorrt-rtx {report.version}", "graph": graph.format, "build_seconds": round(report.seconds, 3),
                "engine_bytes": report.size_bytes, "layers": report.coverage.layers if report.coverage else None,
                "warnings": list(report.warnings), "profile": report.profile,
                "coverage": report.coverage.as_record() if report.coverage else None}
