"""The ``tensorrt-<precision>`` formats: an engine built from the component's ONNX artifact by
:func:`exporters.tensorrt_build.build_engine` (Polygraphy's loaders), with one optimization
profile from the spec's dims and a timing cache shared under the artifacts folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.tensorrt_build import TrtOptions, build_engine, engine_key_parts, plugins_missing, tensorrt_unavailable
from pytest_awml.builders.base import ArtifactBuilder, BuildContext
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.device import Device, Precision
from pytest_awml.provenance import package_version
from pytest_awml.spec import Component

# pytest-awml precision → TensorRT build policy (AWML's names)
POLICY = {Precision.FP32: "fp32", Precision.FP16: "fp16", Precision.TF32: "tf32"}
TIMING_CACHE = "tensorrt-timing.cache"


def engine_format(precision: Precision) -> str:
    return f"tensorrt-{precision.value}"


def options_for(precision: Precision) -> TrtOptions:
    return TrtOptions(policy=POLICY[precision])


class EngineBuilder(ArtifactBuilder):
    """One precision's engines. An engine is valid only for the TensorRT version and GPU model that
    built it, so both are in its key, beside the ONNX file's hash and the build policy."""

    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self.format = engine_format(precision)
        self.requires = (ONNX,)

    def unavailable_reason(self, device: Device) -> str | None:
        reason = tensorrt_unavailable()
        if reason is None and not device.is_cuda:  # an engine is built for, and keyed on, the GPU that will run it
            reason = "TensorRT engines are built on the GPU that runs them: pass --awml-device cuda"
        return reason

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return plugins_missing(plugins)

    def filename(self, component: Component) -> str:
        return f"{component.name}.{self.precision.value}.engine"

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        import torch

        gpu = torch.cuda.get_device_name(context.device.torch)
        return engine_key_parts(context.artifact(ONNX).sha256, options_for(self.precision), package_version("tensorrt"), gpu)

    def write(self, context: BuildContext, path: Path) -> dict[str, Any]:
        import torch

        with torch.cuda.device(context.device.torch):
            seconds = build_engine(context.artifact(ONNX).path, path, component=context.label, inputs=context.component.inputs,
                         options=options_for(self.precision), timing_cache=context.store.root / TIMING_CACHE)
        return {"build_seconds": round(seconds, 3)}
