"""Values by typed key, each made once per session, safe under the threads that share them.

Runners and pipelines are shared by threads (a pipeline's stages, a test's worker pool): two threads
asking for the same runner must get one runner, opened once. Each key has its own lock, so making one
value (an engine build) never blocks another thread asking for a different one.

A key is a :class:`Key`: a slot (an :class:`~enum.Enum` member of the module that owns the values)
and the parts that tell the values apart, so a namespace is a name the type checker knows, not a
string spelt a different way at each use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from pytest_awml.errors import AwmlError

T = TypeVar("T")


@dataclass(frozen=True)
class Key:
    slot: Enum
    parts: tuple[Hashable, ...]


def key(slot: Enum, *parts: Hashable) -> Key:
    return Key(slot, parts)


@dataclass(frozen=True)
class _Failed:
    error: AwmlError


class Memo:
    """Values by :class:`Key`, each made once. An :class:`AwmlError` raised while making one is kept and
    raised again to every later caller; any other exception is not kept (it may be transient)."""

    def __init__(self) -> None:
        self._values: dict[Key, Any] = {}
        self._locks: dict[Key, threading.RLock] = {}
        self._lock = threading.Lock()  # guards the two dicts, never held while a value is made

    def get(self, memo_key: Key, make: Callable[[], T]) -> T:
        with self._lock:
            if memo_key in self._values:
                return self._unwrap(self._values[memo_key])
            lock = self._locks.setdefault(memo_key, threading.RLock())
        with lock:  # reentrant: making a value may ask for another (same thread), never for itself
            with self._lock:
                if memo_key in self._values:
                    return self._unwrap(self._values[memo_key])
            try:
                value: Any = make()
            except AwmlError as exc:
                value = _Failed(exc)
            with self._lock:
                self._values[memo_key] = value
                self._locks.pop(memo_key, None)
        return self._unwrap(value)

    def holds(self, memo_key: Key) -> bool:
        """Whether ``memo_key``'s value is made or being made (a second caller would not make it again)."""
        with self._lock:
            return memo_key in self._values or memo_key in self._locks

    def put(self, memo_key: Key, value: Any) -> None:
        with self._lock:
            self._values[memo_key] = value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._locks.clear()

    @staticmethod
    def _unwrap(value: Any) -> Any:
        if isinstance(value, _Failed):
            raise value.error
        return value
