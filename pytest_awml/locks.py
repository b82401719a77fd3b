"""File locks that say who holds them and give up after a bounded wait.

Artifact builds and golden writes are serialised across processes (xdist workers, concurrent CI
jobs sharing a cache) by file locks. A plain lock waits silently: a second run stuck behind a hung
one looked like a hang of its own. Here the holder writes its pid, host and start time beside the
lock (``<lock>.owner``); a waiter says whom it waits for, and gives up after ``timeout_s`` (the
``--awml-lock-timeout`` option) with an :class:`~pytest_awml.errors.ArtifactError` naming the holder.
The lock itself is the OS's (``fcntl``): it is released when its holder dies, so a stale owner file
never blocks anyone.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_awml.errors import ArtifactError
from pytest_awml.provenance import timestamp

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
"""A full-size TensorRT build takes minutes; waiting longer than this means the holder is stuck."""
QUIET_WAIT_S = 5.0
"""A wait shorter than this (another worker finishing a small export) is not worth a message."""
OWNER_SUFFIX = ".owner"


def owner_path(lock_path: Path) -> Path:
    return Path(f"{lock_path}{OWNER_SUFFIX}")


def holder(lock_path: Path) -> str:
    """Who holds ``lock_path``, as its owner file says (``pid 123 on host ci-7 since …, building …``)."""
    try:
        owner = json.loads(owner_path(lock_path).read_text())
        return f"pid {owner['pid']} on host {owner['host']} since {owner['since']} ({owner['what']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that left no owner file (it may be starting)"


@contextmanager
def held(lock_path: Path, what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock at ``lock_path`` while the body runs; ``what`` says what it protects, for the
    waiters' messages. Raises ArtifactError after waiting ``timeout_s`` seconds."""
    lock_path = Path(lock_path)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=min(QUIET_WAIT_S, timeout_s))
    except Timeout:
        log.warning("waiting up to %g s for %s: the lock %s is held by %s", timeout_s, what, lock_path, holder(lock_path))
        try:
            lock.acquire(timeout=max(timeout_s - QUIET_WAIT_S, 0.0))
        except Timeout:
            raise ArtifactError(f"gave up after {timeout_s:g} s waiting for {what}: the lock {lock_path} is held by "
                                f"{holder(lock_path)}. Stop that process if it is stuck, or wait longer with "
                                "--awml-lock-timeout SECONDS") from None
    owner = owner_path(lock_path)
    try:
        owner.write_text(json.dumps({"pid": os.getpid(), "host": platform.node(), "since": timestamp(), "what": what}))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
