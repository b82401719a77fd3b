"""The engine formats, ``tensorrt-<precision>`` and ``tensorrt-rtx-<precision>``: one builder for both runtimes,
their differences as data (:class:`~exporters.tensorrt_build.Flavor`), on
:func:`exporters.tensorrt_build.build_engine` with one optimization profile from the spec's dims.

TensorRT proper builds on the GPU that will run the engine (the engine is keyed by that GPU's model) and asks for
fp16 and TF32 with builder flags, sharing a timing cache under the artifacts folder. TensorRT-RTX builds on the CPU
(no GPU in the key) from a graph whose types give the precision: ``fp32``/``tf32`` from the fp32 graph (TF32
allowed for ``tf32``), ``fp16`` from the fp16 graph (:mod:`pytest_awml.builders.onnx_fp16`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from exporters.tensorrt_build import TENSORRT, EngineLayers, EngineOptions, Flavor, build_engine, engine_key_parts
from pytest_awml.builders.base import ArtifactBuilder, BuildContext
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx_fp16 import FORMAT as ONNX_FP16
from pytest_awml.builders.onnx_fp16 import converter_unavailable
from pytest_awml.builders.onnx_int8 import FORMAT as ONNX_INT8
from pytest_awml.builders.onnx_int8 import OnnxInt8Builder
from pytest_awml.device import Device, Precision
from pytest_awml.errors import ArtifactError
from pytest_awml.onnx_scopes import node_modules
from pytest_awml.provenance import package_version
from pytest_awml.spec import Component

TIMING_CACHE = "{flavor}-timing.cache"  # under the artifacts folder, one per runtime


def engine_format(precision: Precision, flavor: Flavor = TENSORRT) -> str:
    return f"{flavor.name}-{precision.value}"


def graph_format(precision: Precision, flavor: Flavor = TENSORRT) -> str:
    """The ONNX artifact an engine of ``precision`` is built from: a runtime without an fp16 flag builds fp16 from the
    fp16 graph; int8 is built from the QDQ graph on every runtime (explicit quantization: the pairs give the precision)."""
    if precision is Precision.INT8:
        return ONNX_INT8
    return ONNX_FP16 if precision is Precision.FP16 and not flavor.fp16_flag else ONNX


def options_for(precision: Precision, flavor: Flavor = TENSORRT) -> EngineOptions:
    """The build options of a precision: with an fp16 flag, fp16 is the flag; without one, the graph's types."""
    return EngineOptions(fp16=precision is Precision.FP16 and flavor.fp16_flag, tf32=precision is Precision.TF32,
                         int8=precision is Precision.INT8 and flavor.fp16_flag, strongly_typed=flavor.strongly_typed)


class EngineBuilder(ArtifactBuilder):
    """One runtime's engines of one precision, keyed on the graph's hash, the options and the runtime's version (and,
    for a runtime that builds on the GPU that runs it, that GPU's model: such an engine is valid only there)."""

    def __init__(self, precision: Precision, flavor: Flavor = TENSORRT) -> None:
        self.precision, self.flavor = precision, flavor
        self.format = engine_format(precision, flavor)
        self.graph_format = graph_format(precision, flavor)  # the one artifact it requires
        self.requires = (self.graph_format,)
        self.options = options_for(precision, flavor)

    def unavailable_reason(self, device: Device) -> str | None:
        reason = self.flavor.unavailable()
        if reason is None and self.graph_format == ONNX_FP16:
            reason = converter_unavailable()
        if reason is None and self.flavor.builds_on_gpu and not device.is_cuda:  # built for, and keyed on, the GPU that runs it
            reason = f"{self.flavor.title} engines are built on the GPU that runs them: pass --awml-device cuda"
        return reason

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        if plugins and self.graph_format == ONNX_INT8:
            return OnnxInt8Builder().plugins_unavailable(plugins)
        return self.flavor.plugins_missing(plugins)

    def parser_plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return self.flavor.plugins_missing(plugins)

    def onnx_graph(self) -> str | None:
        return self.graph_format

    def filename(self, component: Component) -> str:
        return f"{component.name}.{self.format}.engine"

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        gpu = None
        if self.flavor.builds_on_gpu:
            import torch

            gpu = torch.cuda.get_device_name(context.device.torch)
        return engine_key_parts(context.artifact(self.graph_format).sha256, self.options,
                                package_version(self.flavor.package), gpu)

    def write(self, context: BuildContext, path: Path) -> dict[str, Any]:
        graph = context.artifact(self.graph_format)
        timing_cache = context.store.root / TIMING_CACHE.format(flavor=self.flavor.name)
        placed: Any = contextlib.nullcontext()
        if self.flavor.builds_on_gpu:
            import torch

            placed = torch.cuda.device(context.device.torch)
        with placed:
            report = build_engine(graph.path, path, flavor=self.flavor, component=context.label, inputs=context.component.inputs,
                                  options=self.options, timing_cache=timing_cache)
        coverage = report.coverage
        if coverage is None:  # build_engine measures it on every build; a report without one is not its own
            raise ArtifactError(f"{context.label}: the {self.flavor.title} build of {path} reported no op coverage: "
                                "exporters.tensorrt_build.build_engine must return the parser's coverage")
        return {"builder": f"{self.flavor.name} {report.version}", "graph": graph.format, "build_seconds": round(report.seconds, 3),
                "engine_bytes": report.size_bytes, "layers": coverage.layers, "warnings": list(report.warnings),
                "profile": report.profile, "coverage": coverage.as_record(),
                "engine_layers": engine_layer_modules(report.layers, graph.path)}


def engine_layer_modules(layers: EngineLayers | None, graph: Path) -> dict[str, Any]:
    """Each engine layer with its ONNX nodes and the modules they came from (:func:`pytest_awml.onnx_scopes.module_of`):
    a fused layer names every module it holds."""
    import onnx

    if layers is None:
        return {"source": "none: the build reported no layers", "layers": []}
    modules = node_modules(onnx.load(str(graph), load_external_data=False).graph)
    return {"source": layers.source,
            "layers": [{"layer": name, "onnx_nodes": list(nodes), "modules": list(dict.fromkeys(modules[n] for n in nodes if n in modules))}
                       for name, nodes in layers.layers]}
