"""Stateless exporters: a torch module to ONNX, an ONNX file to a TensorRT engine.

This package knows tensors, files and runtimes, never models: everything model-specific arrives
as arguments. It sits at the bottom of the dependency arrows (``model_specs`` and
``pytest_awml`` import it; it imports neither).
"""

from exporters.errors import ArtifactError, AwmlError, BackendUnavailable, ExportError
from exporters.signature import Dim, TensorSpec

__all__ = [
    "ArtifactError",
    "AwmlError",
    "BackendUnavailable",
    "Dim",
    "ExportError",
    "TensorSpec",
]
