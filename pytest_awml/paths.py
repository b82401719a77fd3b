"""Where pytest-awml writes: inside the folder a user gave it, and through no symbolic link.

The artifacts, golden and report folders are shared (CI caches restored between jobs, folders
several runs write). A symbolic link planted inside one (a lock's owner file, ``failures/``, a key
folder) points anywhere: writing, truncating or deleting through it reaches a file outside the folder.
So every path the plugin writes, truncates or deletes is checked here first, by name: a link is
refused with an error naming it, never followed. The folder the user named may itself be a link (that
is their choice); what the plugin creates inside it may not. Files are written whole or not at all
(``write_atomic``): a full disk leaves the previous file as it was and says which folder is full.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from pytest_awml.errors import ArtifactError

FILE_MODE = 0o666  # before the umask, as open() creates files: others may read what the plugin writes
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM)
"""Errors a write meets in the folder it writes (full, read-only, too large, not allowed)."""


def no_link(path: Path, root: Path | None = None) -> Path:
    """``path``, once it is known to be inside ``root`` with neither it nor a folder between it and
    ``root`` a symbolic link; without ``root``, only ``path`` itself is checked. Raises ArtifactError."""
    path = Path(path)
    if root is None:
        _refuse_if_link(path, path.parent)
        return path
    root = Path(root)
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ArtifactError(f"{path} is outside {root}: pytest-awml writes only inside the folders it was given") from None
    current = root
    for part in relative.parts:
        if part in ("..", ""):
            raise ArtifactError(f"{path} climbs out of {root} ('..'): pytest-awml writes only inside the folders it was given")
        current = current / part
        _refuse_if_link(current, root)
    return path


def _refuse_if_link(path: Path, root: Path) -> None:
    if path.is_symlink():
        raise ArtifactError(f"{path} is a symbolic link (to {os.readlink(path)}): pytest-awml writes, truncates and deletes "
                            f"nothing through a link inside {root}, which could reach any file. Remove the link "
                            f"(rm {path}) and run again: the run makes a real one")


def write_atomic(path: Path, data: bytes, *, root: Path | None = None, what: str = "") -> None:
    """Write ``data`` so that ``path`` holds either its old content or all of the new; ``path`` (and,
    with ``root``, every folder between them) must be no symbolic link. ``what`` names the content for
    the error a failed write raises (ArtifactError naming the folder: a full disk, a read-only folder).

    The temporary file is opened by hand, not by ``tempfile.mkstemp``: that one creates files
    readable by their owner only (0600), and the rename would keep that mode. It is created
    exclusively (``O_EXCL`` follows no link) and renamed over ``path`` (a rename replaces a link, never
    writes through it)."""
    path = no_link(path, root)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise write_error(path.parent, what or path.name, exc) from exc


def write_error(folder: Path, what: str, exc: OSError) -> ArtifactError:
    """The error of a write that failed in ``folder``: which folder, what was being written, why, and
    that what was there before is untouched."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space there (or give the run another folder); what was there before is unchanged"
    else:
        fix = "make it writable (or give the run another folder); what was there before is unchanged"
    return ArtifactError(f"cannot write {what} in {folder}: {exc.strerror or exc}: {fix}")
