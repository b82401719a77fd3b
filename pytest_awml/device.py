"""Devices and precisions as value objects, parsed once from options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from pytest_awml.errors import AwmlError

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True, order=True)
class Device:
    """``cpu`` or ``cuda:N``. ``id`` is the form used in test ids (``cpu``, ``cuda0``)."""

    type: str
    index: int | None = None

    @classmethod
    def parse(cls, text: str) -> Device:
        match = _DEVICE.match(text.strip().lower())
        if not match:
            raise AwmlError(f"--awml-device {text!r} is not a device: use cpu, cuda or cuda:N")
        kind, index = match.group(1), match.group(2)
        if kind == "cpu":
            if index is not None:
                raise AwmlError(f"--awml-device {text!r}: the CPU has no index, use plain 'cpu'")
            return cls("cpu")
        return cls("cuda", int(index) if index is not None else 0)

    @property
    def id(self) -> str:
        return self.type if self.index is None else f"{self.type}{self.index}"

    @property
    def torch(self) -> str:
        """The string torch takes (``cpu``, ``cuda:0``)."""
        return self.type if self.index is None else f"{self.type}:{self.index}"

    @property
    def is_cuda(self) -> bool:
        return self.type == "cuda"

    @property
    def ordinal(self) -> int:
        """A CUDA device's index (``cuda`` alone is ``cuda:0``, as :meth:`parse` reads it); a CPU has none."""
        if self.index is None:
            raise AwmlError(f"{self.id} is not a CUDA device: it has no index")
        return self.index

    def __str__(self) -> str:
        return self.torch


class Precision(str, Enum):
    """Numeric policies. ``fp32`` means true fp32: TF32 is off; ``tf32`` is its own precision; ``int8`` runs a QDQ graph
    calibrated on the spec's samples (:mod:`pytest_awml.builders.onnx_int8`)."""

    FP32 = "fp32"
    FP16 = "fp16"
    TF32 = "tf32"
    INT8 = "int8"

    @classmethod
    def parse(cls, text: str) -> Precision:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise AwmlError(
                f"precision {text!r} is unknown: use one of {', '.join(p.value for p in cls)}"
            ) from None

    def __str__(self) -> str:
        return self.value


CPU = Device("cpu")


def absent_reason(device: Device) -> str | None:
    """Why ``device`` is not on this machine (a CUDA device torch does not see), or None."""
    if not device.is_cuda:
        return None
    import torch

    count = torch.cuda.device_count()
    if device.ordinal >= count:
        return f"torch sees {count} CUDA device(s) ({'a CPU build of torch' if torch.version.cuda is None else 'no such GPU'})"
    return None


@dataclass(frozen=True, order=True)
class Target:
    """Where and how a runner runs: backend × device × precision."""

    backend: str
    device: Device
    precision: Precision

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.device.id}-{self.precision.value}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """``onnxruntime-cuda-cuda0-fp16`` → Target; the backend may itself hold dashes."""
        try:
            backend, device, precision = text.rsplit("-", 2)
        except ValueError:
            raise AwmlError(f"{text!r} is not a target id (<backend>-<device>-<precision>)") from None
        match = re.match(r"^(cpu|cuda)(\d*)$", device)
        if not backend or not match:
            raise AwmlError(f"{text!r} is not a target id (<backend>-<device>-<precision>)")
        parsed = Device.parse(device if not match.group(2) else f"cuda:{match.group(2)}")
        return cls(backend, parsed, Precision.parse(precision))


REFERENCE = Target("pytorch", CPU, Precision.FP32)
