"""The ONNX Runtime backend (CPU execution provider; GPU providers arrive with onnxruntime-gpu)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pytest_awml.device import Device, Precision, Target
from pytest_awml.runners.base import Backend, Runner, RunnerSource


class OnnxRuntimeRunner(Runner):
    """One ``InferenceSession`` at ONNX Runtime's default graph optimization level.

    The level is left at its default (``ORT_ENABLE_ALL``) on purpose: the framework this replaces
    switched optimizations off, which verified a graph that deployment never runs.
    """

    def __init__(self, path, target: Target, output_names: tuple[str, ...], providers: list, input_specs=()) -> None:
        import onnxruntime

        super().__init__(target, output_names, input_specs)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings from the runtime are noise in a test report
        # ONNX Runtime's intra-op threads spin after each run and steal the cores from the stages
        # around it: in the CenterPoint pipeline on 2 cores, voxelization went from 6.6 ms to 69 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
        requested = providers[0] if isinstance(providers[0], str) else providers[0][0]
        used = self._session.get_providers()[0]
        if used != requested:
            # ONNX Runtime falls back silently when a provider cannot load; a fallback would
            # verify and time a different runtime than the one asked for.
            raise RuntimeError(f"ONNX Runtime fell back to {used} instead of {requested}")
        self._graph_outputs = [o.name for o in self._session.get_outputs()]
        missing = [n for n in output_names if n not in self._graph_outputs]
        if missing:
            raise RuntimeError(f"the ONNX graph has no output(s) {missing}; it has {self._graph_outputs}")

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    @property
    def session(self):
        """The InferenceSession itself, for bare-loop comparisons (benchmarks/fidelity.py)."""
        return self._session

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(value) for name, value in inputs.items()}

    def execute(self, prepared: dict[str, np.ndarray]) -> Any:
        return self._session.run(list(self.output_names), prepared)

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in zip(self.output_names, raw)}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def importable(self) -> bool:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"onnxruntime not importable: {exc}"
        if device.is_cuda:
            return "the onnxruntime backend runs on the CPU; use onnxruntime-cuda for GPUs"
        if precision is not Precision.FP32:
            return f"ONNX Runtime's CPU provider runs the fp32 graph; {precision} needs a GPU backend"
        return None

    def artifact_format(self, precision: Precision) -> str | None:
        return "onnx"

    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        return OnnxRuntimeRunner(source.artifact("onnx"), target, source.output_names, ["CPUExecutionProvider"], source.input_specs)
