"""The PyTorch backend: the reference on CPU fp32, and a backend of its own on CUDA."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import BackendError
from pytest_awml.runners.base import Backend, Runner, RunnerSource


class PyTorchRunner(Runner):
    """The module itself. ``open`` takes a copy of it to the target's device and dtype: moving the
    reference module to CUDA or half would change the reference itself."""

    def __init__(self, module, target: Target, output_names: tuple[str, ...], input_names: tuple[str, ...], input_specs=()) -> None:
        super().__init__(target, output_names, input_specs)
        self._source = module
        self._input_names = tuple(input_names)
        self._module: Any = None  # a torch.nn.Module once activated
        self._dtype: Any = None  # a torch.dtype once activated

    def activate(self) -> None:
        import torch

        # fp16 means half weights and half inputs (not autocast): that is what an fp16 engine
        # computes end to end, so parity measures the same thing for every backend.
        self._dtype = torch.float16 if self.target.precision is Precision.FP16 else torch.float32
        self._module = copy.deepcopy(self._source).to(device=self.target.device.torch, dtype=self._dtype).eval()

    def deactivate(self) -> None:
        self._module = None

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> tuple:
        import torch

        self.open()
        device, dtype = self.target.device.torch, self._dtype
        return tuple(
            torch.from_numpy(np.ascontiguousarray(inputs[name])).to(device=device, dtype=dtype)
            if np.issubdtype(np.asarray(inputs[name]).dtype, np.floating)
            else torch.from_numpy(np.ascontiguousarray(inputs[name])).to(device)
            for name in self._input_names
        )

    def run_tensors(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The module on device tensors: no copy, the precision's dtype in and out (see :meth:`Runner.run_tensors`)."""
        self.check(inputs)
        self.open()
        prepared = tuple(inputs[name].to(self._dtype) if inputs[name].is_floating_point() else inputs[name]
                         for name in self._input_names)
        return dict(zip(self.output_names, self._outputs(self.execute(prepared)), strict=True))

    def _outputs(self, raw: Any) -> tuple:
        import torch

        values = (raw,) if isinstance(raw, torch.Tensor) else tuple(raw)
        if len(values) != len(self.output_names):
            raise BackendError(
                f"{self.target.id}: the module returned {len(values)} outputs, the spec declares "
                f"{len(self.output_names)}: {', '.join(self.output_names)}"
            )
        return values

    def execute(self, prepared: tuple) -> Any:
        import torch

        with torch.inference_mode(), _tf32(self.target.precision is Precision.TF32):
            return self._module(*prepared)

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        return {name: v.detach().float().cpu().numpy() for name, v in zip(self.output_names, self._outputs(raw), strict=True)}

    def cuda_stream(self):
        if not self.target.device.is_cuda:
            return None
        import torch

        return torch.cuda.current_stream(self.target.device.torch)

    def synchronize(self) -> None:
        if self.target.device.is_cuda:
            import torch

            torch.cuda.synchronize(self.target.device.torch)


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """cuDNN convolutions default to TF32 (``torch.backends.cudnn.allow_tf32`` is True): under
    ``fp32`` that would verify a TF32 model. Set the flags for this call and restore them after.
    They are process-wide: concurrent calls of runners at different precisions would interfere."""
    import torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class PyTorchBackend(Backend):
    name = "pytorch"

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        if precision is Precision.INT8:
            return "int8 is a quantized graph's precision: ONNX Runtime and TensorRT run it, the PyTorch module is its reference"
        if device.is_cuda:
            import torch

            if not torch.cuda.is_available():
                return "torch.cuda.is_available() is False (no CUDA device or a CPU build of torch)"
            if device.ordinal >= torch.cuda.device_count():
                return f"{device} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)"
        elif precision is not Precision.FP32:
            return f"{precision} on the CPU is not a deployment target; run {precision} on cuda"
        if precision is Precision.TF32 and not device.is_cuda:
            return "tf32 exists only on CUDA"
        return None

    def artifact_format(self, precision: Precision) -> str | None:
        return None

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return None  # PyTorch runs the module, whose forward computes what the plugin node stands for

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        return PyTorchRunner(source.module, target, source.output_names, source.input_names, source.input_specs)
