"""A mapping whose values are made when first read: what a caller may never need (a random feed both sides of
which are stored, the CUDA events of a stage breakdown read after the clock stopped) is not made on its behalf."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any


class LazyMapping(Mapping):
    """``make()``'s mapping, made on the first read of a value and kept. Its keys are known up front: ``iter``,
    ``len`` and ``in`` answer from them without making it (``Mapping``'s ``in`` would read a value)."""

    def __init__(self, keys: Iterable[str], make: Callable[[], Mapping[str, Any]]) -> None:
        self._keys = tuple(dict.fromkeys(keys))
        self._make = make
        self._made: Mapping[str, Any] | None = None

    @property
    def made(self) -> bool:
        return self._made is not None

    def _values(self) -> Mapping[str, Any]:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, key: str) -> Any:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys
