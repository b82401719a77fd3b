"""A deploy config as read (:func:`pytest_awml.deploy_config.read`): what it decides, typed.

These are what the rest of the harness sees of a deploy config (``deploy_apply`` applies them to a spec, the
plan adds their targets and scenarios, the report records them); how a file becomes one is the reader's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_awml.deploy_fields import BACKENDS, ENGINE_BACKEND, EnginePolicy, refused
from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError


@dataclass(frozen=True)
class Profile:
    """One input's TensorRT profile: min, opt and max shapes."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class DeployComponent:
    """One graph the deploy config describes, by the config's own name."""

    name: str
    inputs: tuple[tuple[str, str], ...] = ()  # (name, dtype); dtype "" when the config gives none
    outputs: tuple[tuple[str, str], ...] = ()
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None  # (height, width): mmdeploy's onnx_config.input_shape, given as [width, height]


@dataclass(frozen=True)
class Endpoint:
    """A backend on a device as AWML names it (``onnx`` on ``cuda``) and the harness's backend for it."""

    backend: str
    device: Device
    precision: Precision  # TensorRT's from the precision policy; fp32 for the others

    @classmethod
    def parse(cls, where: str, backend: Any, device: Any, engine: EnginePolicy) -> Endpoint:
        device_type = str(device).split(":")[0]
        name = BACKENDS.get((backend, device_type))
        if name is None:
            raise refused(where, f"backend {backend!r} on {device!r}", f"use one of {sorted({f'{b} on {d}' for b, d in BACKENDS})}")
        try:
            parsed = Device.parse(str(device))
        except AwmlError:
            raise refused(where, f"device {device!r}", "use cpu, cuda or cuda:N") from None
        if backend == ENGINE_BACKEND:  # the precision policy picks the engine backend and its precision
            return cls(engine.backend, parsed, engine.precision)
        return cls(name, parsed, Precision.FP32)


@dataclass(frozen=True)
class Scenario:
    """A verification scenario: the ``test`` endpoint's outputs against the ``reference`` endpoint's."""

    reference: Endpoint
    test: Endpoint


@dataclass(frozen=True)
class DeployConfig:
    """What a deploy config decides, typed; ``fields`` lists every field the file set with what it does."""

    path: Path
    layout: str  # "deployment" (AWML's framework) or "mmdeploy"
    components: tuple[DeployComponent, ...]
    opset: int | None = None
    constant_folding: bool | None = None
    checkpoint: str | None = None
    export_mode: str = "both"
    precisions: tuple[Precision, ...] = ()  # the TensorRT targets' precisions; () when TensorRT is not asked for
    scenarios: tuple[Scenario, ...] = ()
    tolerance: float | None = None
    evaluation: tuple[Endpoint, ...] = ()  # () when evaluation is off or absent: test_metric keeps the run's targets
    fields: tuple[tuple[str, str, str], ...] = ()  # (field, "drives" | "not applicable", what / why)

    def as_record(self) -> dict[str, Any]:
        return {"path": str(self.path), "layout": self.layout, "opset": self.opset, "export_mode": self.export_mode,
                "precisions": [p.value for p in self.precisions], "tolerance": self.tolerance,
                "scenarios": [f"{s.reference.backend}-{s.reference.device.id} -> {s.test.backend}-{s.test.device.id}" for s in self.scenarios],
                "evaluation": [f"{e.backend}-{e.device.id}" for e in self.evaluation],
                "fields": [{"field": f, "role": role, "meaning": meaning} for f, role, meaning in self.fields]}
