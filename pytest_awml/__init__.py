"""pytest-awml: verify a perception model's deployment (PyTorch → ONNX → TensorRT) with pytest.

Where things are: ``docs/design.md``.
"""

from pytest_awml.errors import (
    ArtifactError,
    AwmlError,
    BackendError,
    BackendUnavailable,
    CheckpointError,
    DataError,
    ExportError,
    LatencyBudgetExceeded,
    NothingCompared,
    SpecError,
    StoreMismatch,
    ToleranceExceeded,
)
from pytest_awml.spec import Component, Dim, FedBy, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

__all__ = [
    "ArtifactError",
    "AwmlError",
    "BackendError",
    "BackendUnavailable",
    "CheckpointError",
    "Component",
    "DataError",
    "Dim",
    "ExportError",
    "FedBy",
    "LatencyBudgetExceeded",
    "LatencySettings",
    "ModelSpec",
    "NothingCompared",
    "OnnxOptions",
    "SpecError",
    "StoreMismatch",
    "TensorSpec",
    "Tolerance",
    "ToleranceExceeded",
]
