"""Artifact builders, registered per format.

A backend names the format it runs (``Backend.artifact_format``); the builder registered under that
format makes the file. Adding a format is one module here with an :class:`ArtifactBuilder` subclass
plus one line in :func:`builtin` (from a plugin or conftest: the ``pytest_awml_add_builders`` hook).
"""

from __future__ import annotations

from pytest_awml.builders.base import ArtifactBuilder, BuildContext, BuilderRegistry, Ingredient

__all__ = ["ArtifactBuilder", "BuildContext", "BuilderRegistry", "Ingredient", "builtin"]


def builtin() -> BuilderRegistry:
    from exporters.tensorrt_build import TENSORRT, TENSORRT_RTX, TENSORRT_TYPED
    from pytest_awml.builders.onnx import OnnxBuilder
    from pytest_awml.builders.onnx_fp16 import OnnxFp16Builder
    from pytest_awml.builders.onnx_int8 import OnnxInt8Builder
    from pytest_awml.builders.tensorrt import EngineBuilder
    from pytest_awml.device import Precision

    registry = BuilderRegistry()
    registry.register(OnnxBuilder())
    for precision in Precision:
        registry.register(EngineBuilder(precision, TENSORRT))
    registry.register(OnnxFp16Builder())
    registry.register(OnnxInt8Builder())
    for flavor in (TENSORRT_RTX, TENSORRT_TYPED):
        for precision in Precision:
            registry.register(EngineBuilder(precision, flavor))
    return registry
