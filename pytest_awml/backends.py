"""The registry of backends: the built-in ones plus any a plugin or conftest adds.

Third parties add a backend by implementing the ``pytest_awml_add_backends(registry)`` hook
(see :mod:`pytest_awml.hookspecs`), never by the plugin importing them.
"""

from __future__ import annotations

from pytest_awml.errors import AwmlError
from pytest_awml.runners.base import Backend


class BackendRegistry:
    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}

    def register(self, backend: Backend, replace: bool = False) -> None:
        if not isinstance(backend, Backend):
            raise AwmlError(f"{backend!r} is not a pytest_awml.runners.Backend")
        if backend.name in self._backends and not replace:
            raise AwmlError(f"a backend named {backend.name!r} is already registered; pass replace=True to override it")
        self._backends[backend.name] = backend

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            raise AwmlError(f"unknown backend {name!r}: registered are {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._backends)

    def default_names(self, device) -> list[str]:
        """What runs when ``--awml-backends`` is not given: every backend that can run on ``device``
        here, plus those that ask to be listed anyway (their tests skip with the reason)."""
        from pytest_awml.device import Precision

        return [name for name, backend in self._backends.items()
                if backend.listed_when_unavailable or backend.unavailable_reason(device, Precision.FP32) is None]


def builtin() -> BackendRegistry:
    from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeCudaBackend, OnnxRuntimeTrtBackend
    from pytest_awml.runners.pytorch import PyTorchBackend
    from pytest_awml.runners.tensorrt import TensorRTBackend

    registry = BackendRegistry()
    for backend in (PyTorchBackend(), OnnxRuntimeBackend(), OnnxRuntimeCudaBackend(), OnnxRuntimeTrtBackend(), TensorRTBackend()):
        registry.register(backend)
    return registry
