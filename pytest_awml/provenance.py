"""What every file and record pytest-awml writes is stamped with: a local time and library versions.

One format for times (ISO 8601 with the UTC offset) and one table of the libraries that matter, so
that a manifest, a golden file, the history and the JSON report can be read side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

COMPUTE = ("torch", "onnx", "onnxruntime", "numpy")
"""The libraries that decide what a model computes: recorded with golden outputs, where a change
explains a drift."""

LIBRARIES = ("pytest-awml", *COMPUTE, "onnxruntime-gpu", "tensorrt", "tensorrt_rtx_cu13_bindings", "pytest", "pytest-benchmark")
"""Everything a run's figures depend on: in the JSON report and the benchmark's machine info."""


def timestamp(seconds: float | None = None) -> str:
    """Local time ``seconds`` (now when None) as ``2025-01-31T12:00:00+0100``."""
    return time.strftime(TIME_FORMAT, time.localtime(seconds))


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    return {name: package_version(name) for name in names}
