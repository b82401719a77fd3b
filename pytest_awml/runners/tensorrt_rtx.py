"""The TensorRT-RTX backend: engines built on any machine (even without a GPU, see
:mod:`pytest_awml.builders.tensorrt_rtx`), run by the TensorRT runner on GPUs of the compute
capabilities TensorRT-RTX supports. Elsewhere its runtime tests skip with the capability in the reason."""

from __future__ import annotations

from exporters.tensorrt_rtx_build import MODULE, capability_problem, plugins_missing, rtx_unavailable
from pytest_awml.builders.tensorrt_rtx import rtx_format
from pytest_awml.device import Device, Precision, Target
from pytest_awml.runners.base import Backend, Runner, RunnerSource
from pytest_awml.runners.tensorrt import TensorRTRunner


class TensorRTRtxBackend(Backend):
    name = "tensorrt-rtx"
    listed_when_unavailable = True  # its engines build everywhere: test_export runs even where nothing can run them

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        reason = rtx_unavailable()
        if reason:
            return reason
        if not device.is_cuda:
            return "TensorRT-RTX engines run on CUDA devices only: pass --awml-device cuda (test_export builds them here)"
        import torch

        if not torch.cuda.is_available() or device.ordinal >= torch.cuda.device_count():
            return f"{device} is not available to torch: TensorRT-RTX engines cannot run here"
        return capability_problem(*torch.cuda.get_device_capability(device.torch))

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        return plugins_missing(plugins)

    def artifact_format(self, precision: Precision) -> str | None:
        return rtx_format(precision)

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        fmt = rtx_format(target.precision)
        return TensorRTRunner(lambda: source.artifact(fmt), target, source.output_specs, source.input_specs, module=MODULE)
