"""What the configs decided for a run, each with the file that set it: the report's ``run.facts``.

A spec rebuilt from a training config (``configure``) and a deploy config (``--awml-deploy-config``) both
settle values a reader of the report wants to see without opening the files (point features, past sweeps,
class names, voxel size, range, grid, opset, dynamic axes, profiles) and, when a ``_base_`` chain is involved,
which file of it set each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ConfigFact:
    """One resolved value, by name, and the file that set it."""

    name: str
    value: Any
    source: str  # the path of the file that set it

    @classmethod
    def of(cls, name: str, value: Any, source: Path | str) -> ConfigFact:
        return cls(name, _plain(value), str(source))

    def as_record(self) -> dict[str, Any]:
        return {"fact": self.name, "value": self.value, "source": self.source}


def _plain(value: Any) -> Any:
    """Lists, dicts, numbers and strings only: what the JSON report can hold as it is."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
