"""File locks that say who holds them and give up after a bounded wait.

Artifact builds and golden writes are serialised across processes (xdist workers, concurrent CI
jobs sharing a cache) by file locks. A plain lock waits silently: a second run stuck behind a hung
one looked like a hang of its own. Here the holder writes its pid, host and start time beside the
lock (``<lock>.owner``, written whole by rename); a waiter says whom it waits for and how long it has
waited, every ``NOTE_EVERY_S`` seconds (a warning of this module's logger, which the plugin shows on
the terminal even while pytest captures output), and gives up after ``timeout_s`` (the
``--awml-lock-timeout`` option) with an :class:`~pytest_awml.errors.ArtifactError` naming the holder.
The lock itself is the OS's (``fcntl``): it is released when its holder dies, so a stale owner file
never blocks anyone. A lock or owner file that is a symbolic link is refused (opening the lock
truncates it; the owner file is overwritten): either would reach the file the link points to.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_awml.errors import ArtifactError
from pytest_awml.paths import no_link, write_atomic
from pytest_awml.provenance import timestamp

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
"""A full-size TensorRT build takes minutes; waiting longer than this means the holder is stuck."""
QUIET_WAIT_S = 5.0
"""A wait shorter than this (another worker finishing a small export) is not worth a message."""
NOTE_EVERY_S = 5.0
"""How often a longer wait says again whom it waits for and for how long: a silent wait behind a hung
holder looks like a hang of the run itself."""
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
def held(lock_path: Path, what: str, timeout_s: float = DEFAULT_TIMEOUT_S, root: Path | None = None) -> Iterator[None]:
    """Hold the lock at ``lock_path`` while the body runs; ``what`` says what it protects, for the
    waiters' messages; ``root`` is the folder the lock must be inside, through no link. Raises
    ArtifactError after waiting ``timeout_s`` seconds."""
    lock_path = Path(lock_path)
    owner = owner_path(lock_path)
    no_link(lock_path, root)
    no_link(owner, root)
    lock = FileLock(str(lock_path))
    _acquire(lock, lock_path, what, timeout_s)
    try:
        try:
            write_atomic(owner, json.dumps({"pid": os.getpid(), "host": platform.node(), "since": timestamp(), "what": what}).encode(),
                         what="the lock's owner file")
        except ArtifactError as exc:
            # a full disk: the lock holds without it (waiters say "no owner file"), and the write the lock
            # protects fails next, naming what it was writing
            log.debug("%s", exc)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _acquire(lock: FileLock, lock_path: Path, what: str, timeout_s: float) -> None:
    """Take ``lock`` within ``timeout_s``, saying every ``NOTE_EVERY_S`` who holds it and how long this has waited."""
    start = time.monotonic()
    step = min(QUIET_WAIT_S, timeout_s)
    while True:
        try:
            lock.acquire(timeout=step)
            return
        except Timeout:
            waited = time.monotonic() - start
            left = timeout_s - waited
            log.warning("waiting for %s: the lock %s is held by %s; waited %.0f s of %g s (--awml-lock-timeout)",
                        what, lock_path, holder(lock_path), waited, timeout_s)
            if left <= 0:
                raise ArtifactError(f"gave up after {timeout_s:g} s waiting for {what}: the lock {lock_path} is held by "
                                    f"{holder(lock_path)}. Stop that process if it is stuck, or wait longer with "
                                    "--awml-lock-timeout SECONDS") from None
            step = min(NOTE_EVERY_S, left)
