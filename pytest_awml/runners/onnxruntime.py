"""The ONNX Runtime backend (CPU execution provider; GPU providers arrive with onnxruntime-gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx_int8 import FORMAT as ONNX_INT8
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import ArtifactError, BackendUnavailable
from pytest_awml.runners.base import Backend, Runner, RunnerSource
from pytest_awml.shapes import plan_output_shapes


class OnnxRuntimeRunner(Runner):
    """One ``InferenceSession`` at ONNX Runtime's default graph optimization level, created by ``open``.

    The level is left at its default (``ORT_ENABLE_ALL``) on purpose: the framework this replaces
    switched optimizations off, which verified a graph that deployment never runs. ``model`` is
    the ONNX file's path, built before the runner is made; ``open`` reads it.
    """

    def __init__(self, model: Path, target: Target, output_names: tuple[str, ...], providers: list,
                 input_specs=()) -> None:
        super().__init__(target, output_names, input_specs)
        self._model = model
        self._providers = list(providers)
        self._session: Any | None = None  # the InferenceSession while open (onnxruntime ships no type hints)

    def activate(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings from the runtime are noise in a test report
        # ONNX Runtime's intra-op threads spin after each run and steal the cores from the stages
        # around it: in a lidar pipeline on 2 cores, voxelization went from 6.6 ms to 69 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = self._model
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=self._providers)
        except Exception as exc:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail…) from a bad file
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {type(exc).__name__}: {str(exc).strip()[:300]}. "
                                f"Delete {path.parent} to rebuild it") from exc
        requested = self._providers[0] if isinstance(self._providers[0], str) else self._providers[0][0]
        used = session.get_providers()[0]
        if used != requested:
            # ONNX Runtime falls back silently when a provider cannot load; a fallback would
            # verify and time a different runtime than the one asked for.
            raise BackendUnavailable(f"ONNX Runtime fell back to {used} instead of {requested}: "
                                     f"the {requested} could not load here (see ONNX Runtime's log)")
        graph_outputs = [o.name for o in session.get_outputs()]
        missing = [n for n in self.output_names if n not in graph_outputs]
        if missing:
            raise ArtifactError(f"{path}: the ONNX graph has no output(s) {missing}; it has {graph_outputs}")
        self._session = session

    def deactivate(self) -> None:
        self._session = None

    @property
    def session(self):
        """The InferenceSession itself (opening the runner), for bare-loop comparisons (benchmarks/fidelity.py)."""
        self.open()
        return self.opened(self._session, "ONNX Runtime session")

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.open()
        return {name: np.ascontiguousarray(value) for name, value in inputs.items()}

    def execute(self, prepared: dict[str, np.ndarray]) -> Any:
        return self.opened(self._session, "ONNX Runtime session").run(list(self.output_names), prepared)

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        # one value per requested name: run() was asked for exactly these outputs
        return {name: np.asarray(value) for name, value in zip(self.output_names, raw, strict=True)}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"onnxruntime not importable: {exc}"
        if device.is_cuda:
            return "the onnxruntime backend runs on the CPU; use onnxruntime-cuda for GPUs"
        if precision not in (Precision.FP32, Precision.INT8):
            return f"ONNX Runtime's CPU provider runs the fp32 graph and the int8 QDQ graph; {precision} needs a GPU backend"
        return None

    def artifact_format(self, precision: Precision) -> str | None:
        return ONNX_INT8 if precision is Precision.INT8 else ONNX

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        return OnnxRuntimeRunner(self.artifact_of(source, target), target, source.output_names, ["CPUExecutionProvider"], source.input_specs)


class OnnxRuntimeGpuRunner(OnnxRuntimeRunner):
    """A GPU provider with IO binding: inputs live on the device before the timed call, outputs stay
    there until ``fetch``, so latency excludes host↔device copies. ONNX Runtime queues work on a
    stream of its own, so these runners are timed on the host around a synchronize."""

    def __init__(self, model: Path, target: Target, output_names, providers: list, input_specs=(),
                 output_specs=()) -> None:
        super().__init__(model, target, output_names, providers, input_specs)
        self._device_index = target.device.index
        self.output_specs = tuple(output_specs)

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict:
        import onnxruntime

        self.open()
        return {name: onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), "cuda", self._device_index)
                for name, value in inputs.items()}

    def execute(self, prepared: dict) -> Any:
        session = self.opened(self._session, "ONNX Runtime session")
        binding = session.io_binding()
        for name, value in prepared.items():
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda", self._device_index)
        binding.synchronize_inputs()
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        # one value per output bound in execute(), in the same order
        return {name: np.asarray(value) for name, value in zip(self.output_names, raw.copy_outputs_to_cpu(), strict=True)}

    def run_tensors(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """IO binding on torch's device memory: float32 inputs read in place (others cast first: the graph's
        inputs and outputs are float32 at every precision), outputs written into float32 tensors sized from
        the spec's dims. ONNX Runtime runs on a stream of its own, so torch's queued work (which produced the
        inputs) is waited for first."""
        import torch

        self.check(inputs)
        self.open()
        device = torch.device(self.target.device.torch)
        shapes = {name: tuple(tensor.shape) for name, tensor in inputs.items()}
        outputs = {name: torch.empty(shape, dtype=torch.float32, device=device)
                   for name, shape in plan_output_shapes(self.input_specs, self.output_specs, shapes).items()}
        contiguous = {name: tensor.to(torch.float32).contiguous() for name, tensor in inputs.items()}
        torch.cuda.current_stream(device).synchronize()
        session = self.opened(self._session, "ONNX Runtime session")
        binding = session.io_binding()
        for name, tensor in contiguous.items():
            binding.bind_input(name, "cuda", self._device_index, np.float32, list(tensor.shape), tensor.data_ptr())
        for name, tensor in outputs.items():
            binding.bind_output(name, "cuda", self._device_index, np.float32, list(tensor.shape), tensor.data_ptr())
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return {name: outputs[name] for name in self.output_names}


def _gpu_providers_unavailable(provider: str, device: Device) -> str | None:
    try:
        import onnxruntime
    except ImportError as exc:
        return f"onnxruntime not importable: {exc}"
    if not device.is_cuda:
        return f"{provider} needs --awml-device cuda"
    if provider not in onnxruntime.get_available_providers():
        return f"{provider} is not in this onnxruntime build ({onnxruntime.get_available_providers()}): install onnxruntime-gpu"
    return None


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """CUDA execution provider. Its convolutions default to TF32 (seen on an H200: a 3x3 conv
    differed from PyTorch CPU by 7.6e-3 on outputs up to 90), so ``fp32`` sets ``use_tf32=0`` and
    ``tf32`` is a precision of its own. fp16 would need an fp16-converted graph: not offered."""

    name = "onnxruntime-cuda"
    provider = "CUDAExecutionProvider"
    runs_on = ("cuda",)

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        reason = _gpu_providers_unavailable(self.provider, device)
        if reason is None and precision is Precision.FP16:
            reason = "the CUDA provider runs the graph's own fp32 types; fp16 needs an fp16 graph (use onnxruntime-trt or tensorrt)"
        return reason

    def provider_options(self, source: RunnerSource, target: Target) -> dict:
        return {"device_id": target.device.index, "use_tf32": int(target.precision is Precision.TF32)}

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        providers = [(self.provider, self.provider_options(source, target))]
        return OnnxRuntimeGpuRunner(self.artifact_of(source, target), target, source.output_names, providers, source.input_specs,
                                    source.output_specs)


class OnnxRuntimeTrtBackend(OnnxRuntimeCudaBackend):
    """TensorRT execution provider, profile shapes from the spec's dims (no fallback accepted: the
    runner checks the provider ONNX Runtime actually picked)."""

    name = "onnxruntime-trt"
    provider = "TensorrtExecutionProvider"

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        return _gpu_providers_unavailable(self.provider, device)

    def provider_options(self, source: RunnerSource, target: Target) -> dict:
        def shapes(which: str) -> str:
            return ",".join(f"{t.name}:{'x'.join(str(v) for v in t.at(which))}" for t in source.input_specs)

        return {"device_id": target.device.index, "trt_fp16_enable": target.precision is Precision.FP16,
                "trt_int8_enable": target.precision is Precision.INT8,  # the QDQ graph: TensorRT's explicit quantization
                "trt_profile_min_shapes": shapes("min"), "trt_profile_opt_shapes": shapes("opt"),
                "trt_profile_max_shapes": shapes("max")}
