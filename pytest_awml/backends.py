"""The registry of backends: the built-in ones plus any a plugin or conftest adds.

Third parties add a backend by implementing the ``pytest_awml_add_backends(registry)`` hook
(see :mod:`pytest_awml.hookspecs`), never by the plugin importing them. A built-in backend is a
module under ``pytest_awml/runners/`` plus one line in :func:`builtin`.
"""

from __future__ import annotations

from pytest_awml.device import Device, Precision
from pytest_awml.registry import Registry
from pytest_awml.runners.base import Backend


class BackendRegistry(Registry[Backend]):
    kind = "backend"
    entry_type = Backend

    def name_of(self, entry: Backend) -> str:
        return entry.name

    def default_names(self, device: Device) -> list[str]:
        """What runs when ``--awml-backends`` is not given: every backend that can run on ``device``
        here, plus those that ask to be listed anyway or are made for this device type (their tests
        skip with the reason); never one that runs only on request."""
        return [backend.name for backend in self.entries() if not backend.on_request_only and (
                backend.listed_when_unavailable or device.type in backend.runs_on
                or backend.unavailable_reason(device, Precision.FP32) is None)]


def builtin() -> BackendRegistry:
    from exporters.tensorrt_build import TENSORRT, TENSORRT_RTX, TENSORRT_TYPED
    from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeCudaBackend, OnnxRuntimeTrtBackend
    from pytest_awml.runners.pytorch import PyTorchBackend
    from pytest_awml.runners.tensorrt import TensorRTBackend

    registry = BackendRegistry()
    for backend in (PyTorchBackend(), OnnxRuntimeBackend(), OnnxRuntimeCudaBackend(), OnnxRuntimeTrtBackend(), TensorRTBackend(TENSORRT),
                    TensorRTBackend(TENSORRT_RTX), TensorRTBackend(TENSORRT_TYPED)):
        registry.register(backend)
    return registry
