"""The TensorRT and TensorRT-RTX backends, on the raw TensorRT >= 10 Python API: one runner and one backend class,
the runtimes' differences as data (:class:`~exporters.tensorrt_build.Flavor`: the module, the GPUs its engines run on).

No pycuda: torch already owns the CUDA context here, and a second library managing contexts
(pycuda.autoinit) is a known source of invalid-context errors. Device buffers are torch CUDA
tensors, served by torch's caching allocator (no cudaMalloc per call, unlike pycuda's
``mem_alloc`` per request); the work runs on the runner's own torch stream, which CUDA events time.

One runner serves TensorRT proper (module ``tensorrt``) and TensorRT-RTX (module
``tensorrt_rtx_bindings``, same runtime API): the backend's flavor names the module. Nothing here has run on
this project's machines: TensorRT is not installable on them, and TensorRT-RTX engines do not run on
their GPUs (compute capability 9.0). The code follows NVIDIA's documented TensorRT 10 API
(``deserialize_cuda_engine``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); the
pure parts (shape planning) are unit-tested.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporters.signature import TensorSpec
from exporters.tensorrt_build import TENSORRT, Flavor
from pytest_awml.builders.tensorrt import engine_format
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import ArtifactError, BackendError
from pytest_awml.runners.base import Backend, Runner, RunnerSource
from pytest_awml.shapes import plan_output_shapes

__all__ = ["TensorRTBackend", "TensorRTRunner", "plan_output_shapes", "tensorrt_unavailable"]


def tensorrt_unavailable() -> str | None:
    """Why TensorRT proper cannot be imported here, or None."""
    return TENSORRT.unavailable()


class TensorRTRunner(Runner):
    """One engine, one execution context, one stream, all made by ``open`` and dropped by ``close``.
    ``execute`` holds a lock: a TensorRT execution context runs one inference at a time, so
    concurrent callers queue instead of racing. ``engine`` is the engine file's path, built before the
    runner is made; ``open`` deserializes it."""

    def __init__(self, engine: Path, target: Target, output_specs: Sequence[TensorSpec],
                 input_specs: Sequence[TensorSpec], module: str = "tensorrt") -> None:
        super().__init__(target, tuple(t.name for t in output_specs), tuple(input_specs))
        self._engine_path = engine
        self._module = module
        self._output_specs = tuple(output_specs)
        self._lock = threading.Lock()
        # made by activate(), dropped by deactivate(): a torch device, the engine, its execution context, a torch stream
        self._device: Any | None = None
        self._engine: Any | None = None
        self._context: Any | None = None
        self._stream: Any | None = None
        self._dtypes: dict[str, Any] = {}

    def activate(self) -> None:
        import importlib

        import torch

        trt = importlib.import_module(self._module)
        path = self._engine_path
        self._device = torch.device(self.target.device.torch)
        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")  # an engine with plugin layers (EfficientNMS_TRT) needs their creators
        with torch.cuda.device(self._device):
            engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise ArtifactError(f"TensorRT could not deserialize {path} (built by another TensorRT version or GPU?)")
            self._engine, self._context, self._stream = engine, engine.create_execution_context(), torch.cuda.Stream(self._device)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._dtypes = {name: _torch_dtype(trt, engine.get_tensor_dtype(name)) for name in names}

    def deactivate(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()  # no queued work may outlive the context it runs in
        self._context = self._engine = self._stream = None  # context before engine, as TensorRT frees them
        self._dtypes = {}

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import torch

        self.open()
        with torch.cuda.stream(self._stream):
            return {name: torch.from_numpy(np.ascontiguousarray(value)).to(self._device, dtype=self._dtypes[name], non_blocking=True)
                    for name, value in inputs.items()}

    def execute(self, prepared: dict[str, Any]) -> dict[str, Any]:
        import torch

        shapes = {name: tuple(t.shape) for name, t in prepared.items()}
        planned = plan_output_shapes(self.input_specs, self._output_specs, shapes)
        with self._lock:
            context = self.opened(self._context, "TensorRT execution context")
            stream = self.opened(self._stream, "CUDA stream")
            with torch.cuda.stream(stream):
                for name, tensor in prepared.items():
                    context.set_input_shape(name, shapes[name])
                    context.set_tensor_address(name, tensor.data_ptr())
                outputs = {}
                for name, shape in planned.items():
                    actual = tuple(context.get_tensor_shape(name))
                    if actual != shape:
                        raise BackendError(f"{self.target.id}: TensorRT says output {name!r} is {actual}, the spec implies {shape}")
                    outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=self._device)
                    context.set_tensor_address(name, outputs[name].data_ptr())
                if not context.execute_async_v3(stream.cuda_stream):
                    raise BackendError(f"{self.target.id}: TensorRT execute_async_v3 returned False (see TensorRT's log)")
        return outputs

    def run_tensors(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Device tensors straight in (cast to the engine's types on its stream, after torch's queued work)
        and out in the engine's output types, still on the device."""
        import torch

        self.check(inputs)
        self.open()
        stream = self.opened(self._stream, "CUDA stream")
        stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(stream):
            prepared = {name: tensor.to(self._dtypes[name]).contiguous() for name, tensor in inputs.items()}
            outputs = self.execute(prepared)
            result = {name: outputs[name] for name in self.output_names}
        torch.cuda.current_stream(self._device).wait_stream(stream)
        return result

    def fetch(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        self.opened(self._stream, "CUDA stream").synchronize()
        return {name: raw[name].float().cpu().numpy() for name in self.output_names}

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def cuda_stream(self):
        self.open()
        return self._stream


def _torch_dtype(trt, trt_dtype):
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int64: torch.int64,
             trt.int8: torch.int8, trt.bool: torch.bool, trt.bfloat16: torch.bfloat16}
    return table[trt_dtype]


class TensorRTBackend(Backend):
    """One runtime's engines (``flavor``). Listed even where it cannot run: users deploy TensorRT, its absence must show
    in every summary; TensorRT-RTX engines build everywhere, so test_export runs even where nothing can run them."""

    listed_when_unavailable = True

    def __init__(self, flavor: Flavor = TENSORRT) -> None:
        self.flavor = flavor
        self.name = flavor.name
        self.on_request_only = flavor.strongly_typed  # AWML's strongly_typed policy asks for it; defaults keep one TensorRT

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        reason = self.flavor.unavailable()
        if reason:
            return reason
        if not device.is_cuda:
            built_here = "" if self.flavor.builds_on_gpu else " (test_export builds them here)"
            return f"{self.flavor.title} engines run on CUDA devices only: pass --awml-device cuda{built_here}"
        if not self.flavor.capabilities:
            return None
        import torch

        if not torch.cuda.is_available() or device.index >= torch.cuda.device_count():
            return f"{device} is not available to torch: {self.flavor.title} engines cannot run here"
        return self.flavor.capability_problem(*torch.cuda.get_device_capability(device.torch))

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return self.flavor.plugins_missing(plugins)

    def parser_plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return self.flavor.plugins_missing(plugins)

    def artifact_format(self, precision: Precision) -> str | None:
        return engine_format(precision, self.flavor)

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        return TensorRTRunner(self.artifact_of(source, target), target, source.output_specs, source.input_specs,
                              module=self.flavor.module)
