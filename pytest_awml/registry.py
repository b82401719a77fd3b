"""Named extension points: the backends and the artifact builders a run can use.

Each registry starts with the built-in entries and then gets what plugins and conftest files add
through a hook (``pytest_awml_add_backends``, ``pytest_awml_add_builders``). Registration checks
the type, so a mistake shows at configure time, naming the object, not deep inside a test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from pytest_awml.errors import AwmlError

T = TypeVar("T")


class Registry(ABC, Generic[T]):
    """Entries of one type by name. Subclasses say what an entry is and which attribute names it."""

    kind: ClassVar[str]
    entry_type: ClassVar[type]

    def __init__(self) -> None:
        self._entries: dict[str, T] = {}

    @abstractmethod
    def name_of(self, entry: T) -> str:
        """The name ``entry`` is registered and looked up under."""

    def register(self, entry: T, replace: bool = False) -> None:
        if not isinstance(entry, self.entry_type):
            raise AwmlError(f"{entry!r} is not a {self.entry_type.__module__}.{self.entry_type.__qualname__}")
        name = self.name_of(entry)
        if name in self._entries and not replace:
            raise AwmlError(f"the {self.kind} {name!r} is already registered; pass replace=True to override it")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise AwmlError(f"unknown {self.kind} {name!r}: registered are {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[T]:
        return list(self._entries.values())
