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
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_awml.errors import ArtifactError

FILE_MODE = 0o666  # before the umask, as open() creates files: others may read what the plugin writes
_CHUNK = 1 << 20
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


WRITTEN = ".awml-written.json"
"""Beside files the plugin hands to a person or a consumer (a deployable bundle): the sha256 of each as
it was written, so that a later run tells a file it wrote from one a person edited since."""


@dataclass(frozen=True)
class Staged:
    """Files written and checked in a staging folder (name -> file), each hashed once: what a commit compares
    with the folder's files and records as written."""

    files: Mapping[str, Path]
    sha256: Mapping[str, str]

    @classmethod
    def of(cls, files: Mapping[str, Path]) -> Staged:
        return cls(dict(files), {name: sha256_file(path) for name, path in files.items()})


def edited_since_written(folder: Path, staged: Staged) -> list[Path]:
    """The files of ``folder`` that a commit of ``staged`` would overwrite although the last commit did not
    write them as they are (edited by hand, or put there by someone else), and that differ from what would
    replace them."""
    try:
        written = json.loads((folder / WRITTEN).read_text())
    except (OSError, ValueError):
        written = {}
    written = written if isinstance(written, dict) else {}
    edited = []
    for name in staged.files:
        old = no_link(folder / name, folder.parent)
        if old.exists():
            digest = sha256_file(old)
            if digest != written.get(name) and digest != staged.sha256[name]:
                edited.append(old)
    return edited


def commit_staged(folder: Path, staged: Staged, last: str) -> list[Path]:
    """Move the ``staged`` files (checked, in a folder beside ``folder``'s files on the same disk) into
    ``folder``: ``last`` (the file a consumer reads first, which names the others) goes last and is
    removed first, so that a reader never finds it beside a half-replaced set; then record what was
    written (``WRITTEN``)."""
    (folder / last).unlink(missing_ok=True)
    for name in sorted(staged.files, key=lambda n: n == last):
        os.replace(staged.files[name], no_link(folder / name, folder.parent))
    write_atomic(folder / WRITTEN, json.dumps(dict(staged.sha256), indent=1, sort_keys=True).encode(), root=folder.parent,
                 what="the record of the files written")
    return [folder / name for name in staged.files]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
