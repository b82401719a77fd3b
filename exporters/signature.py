"""The tensor vocabulary shared by specs, exporters and runners: names, shapes, dynamic dims."""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Dim:
    """A named dynamic dimension with the range a deployment must support.

    ``min``/``opt``/``max`` are TensorRT's optimization-profile triple; ONNX sees only ``name``.
    """

    name: str
    min: int
    opt: int
    max: int

    def problems(self) -> list[str]:
        """What is wrong with this dim, as sentences; empty when it is valid."""
        found = []
        if not _IDENT.match(self.name):
            found.append(f"dim name {self.name!r} is not an identifier (letters, digits, '_')")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.min, self.opt, self.max)):
            found.append(f"dim {self.name!r}: min/opt/max must be integers")
        elif not 1 <= self.min <= self.opt <= self.max:
            found.append(
                f"dim {self.name!r}: need 1 <= min <= opt <= max, got "
                f"min={self.min}, opt={self.opt}, max={self.max}"
            )
        return found

    def contains(self, size: int) -> bool:
        return self.min <= size <= self.max


DimLike = int | Dim


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, shape (ints and :class:`Dim`) and dtype."""

    name: str
    shape: tuple[DimLike, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index → dim name, the form ``torch.onnx.export`` takes."""
        return {i: d.name for i, d in enumerate(self.shape) if isinstance(d, Dim)}

    def problems(self) -> list[str]:
        found = []
        if not _IDENT.match(self.name):
            found.append(f"tensor name {self.name!r} is not an identifier")
        for axis, d in enumerate(self.shape):
            if isinstance(d, Dim):
                found.extend(d.problems())
            elif not isinstance(d, int) or isinstance(d, bool) or d < 1:
                found.append(f"tensor {self.name!r} axis {axis}: {d!r} is neither a positive int nor a Dim")
        return found

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why a concrete ``shape`` does not fit this spec, or None when it does."""
        if len(shape) != len(self.shape):
            return f"{self.name!r} has rank {len(shape)}, the spec says {len(self.shape)} ({self.describe()})"
        for axis, (got, want) in enumerate(zip(shape, self.shape, strict=True)):
            if isinstance(want, Dim):
                if not want.contains(got):
                    return (
                        f"{self.name!r} axis {axis} ({want.name}) is {got}, outside the declared "
                        f"range [{want.min}, {want.max}]"
                    )
            elif got != want:
                return f"{self.name!r} axis {axis} is {got}, the spec says {want} ({self.describe()})"
        return None

    def at(self, which: str) -> tuple[int, ...]:
        """The concrete shape at a profile corner: ``which`` is ``min``, ``opt`` or ``max``."""
        return tuple(getattr(d, which) if isinstance(d, Dim) else d for d in self.shape)

    def describe(self) -> str:
        dims = ", ".join(d.name if isinstance(d, Dim) else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {self.dtype}"
