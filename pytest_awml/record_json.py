"""How a record (:mod:`pytest_awml.records`) becomes the JSON report's data and is read back as its type.

The JSON keys and their order are the report's contract (``docs/design.md``): add fields, never rename or drop
one. The JSON is made and read here alone, from the fields:

- a field marked :func:`optional` is left out of the JSON while it is None (a key that only some records of a
  kind carry, as the pipeline's ``stages`` or an xdist run's ``worker``);
- a field marked :func:`flat` writes its own fields in its place (the ids every record starts with, a
  comparison's figures, the latency statistics);
- a nested record, an enum, a path or a mapping of them is written as JSON and read back as its type.

Why not cattrs or pydantic: either is a new dependency of the plugin for the sixty lines below, and the two rules
above (the keys and their order main wrote) would be custom hooks in it anyway.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar, Union

from pytest_awml.compare import OutputComparison
from pytest_awml.timing import LatencyStats

T = TypeVar("T")
_JSON = "json"
_OPTIONAL = "optional"
_FLAT = "flat"


def optional(default: Any = None) -> Any:
    """A field left out of the JSON while it is None."""
    return field(default=default, metadata={_JSON: _OPTIONAL})


def flat() -> Any:
    """A field whose own fields are written in its place."""
    return field(metadata={_JSON: _FLAT})


def to_json(value: Any) -> Any:
    """``value`` as JSON data: a record's fields in order, an enum's value, a path as text, containers in kind."""
    writer = _WRITERS.get(type(value))
    if writer is not None:
        return writer(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            how = f.metadata.get(_JSON)
            if how == _FLAT:
                out.update(to_json(item))
            elif not (how == _OPTIONAL and item is None):
                out[f.name] = to_json(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_json(item) for item in value]
    return value


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """A record of type ``cls`` read back from the JSON :func:`to_json` made of it (keys it does not know are
    ignored: this reader reads a newer plugin's report)."""
    reader = _READERS.get(cls)
    if reader is not None:
        return reader(data)
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # every cls given here is a dataclass
        if f.metadata.get(_JSON) == _FLAT:
            values[f.name] = from_json(hints[f.name], data)
        elif f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name])
    return cls(**values)


def _decode(hint: Any, value: Any) -> Any:
    """``value`` (JSON data) as the type ``hint`` names."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return _decode(next(a for a in args if a is not type(None)), value)
    if isinstance(hint, type) and (hint in _READERS or dataclasses.is_dataclass(hint)):
        return from_json(hint, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return {key: _decode(args[1], item) for key, item in value.items()}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        return tuple(value)
    return value


# Types of other modules that write and read their own JSON: a comparison's NaN figures are null, statistics rounded.
_WRITERS: dict[type, Callable[[Any], Any]] = {OutputComparison: OutputComparison.as_json, LatencyStats: LatencyStats.as_json}
_READERS: dict[type, Callable[[Mapping[str, Any]], Any]] = {OutputComparison: OutputComparison.from_json,
                                                            LatencyStats: LatencyStats.from_json}
