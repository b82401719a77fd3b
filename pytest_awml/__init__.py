"""pytest-awml: verify a perception model's deployment (PyTorch → ONNX → TensorRT) with pytest."""

from pytest_awml.errors import (
    ArtifactError,
    AwmlError,
    BackendUnavailable,
    DataError,
    ExportError,
    SpecError,
    ToleranceExceeded,
)
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

__all__ = [
    "ArtifactError",
    "AwmlError",
    "BackendUnavailable",
    "Component",
    "DataError",
    "Dim",
    "ExportError",
    "LatencySettings",
    "ModelSpec",
    "OnnxOptions",
    "SpecError",
    "TensorSpec",
    "ToleranceExceeded",
    "Tolerance",
]
