"""Digests of what decides a stored file: array content, and the source code a model or backend runs.

``content_digest`` names an input by its bytes, whoever made it. ``code_digest`` hashes the import
closure of the objects given: the file that defines each, and every file its module namespace reaches
(the modules it imports, the modules of the functions and classes it imports by name), followed
transitively. A model in a sibling package (``lib/net.py`` imported by ``specs/net_spec.py``) is in its
spec's closure; a folder or a top-level package is not the unit, so nothing the model imports from
elsewhere is left out.

Left out of a closure, each for a stated reason: the standard library and installed distributions
(site- and dist-packages: their versions are keyed, :func:`pytest_awml.provenance.versions`), and
this plugin's own packages (keyed apart, as a whole, by :func:`package_digest`: stored outputs name
it; a model's forward never runs it).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

DIGEST_CHUNK = 16 << 20  # bytes: an array's buffer is hashed in chunks of this size, side by side
FRAMEWORK = ("pytest_awml", "exporters")  # this plugin's packages: keyed by package_digest, not by closure
_INSTALLED = ("site-packages", "dist-packages")


def content_digest(arrays: Mapping[str, Any]) -> str:
    """A hash of named arrays (or of named digests): equal content, equal digest, whoever made it.

    Each array's buffer is read in place (``tobytes()`` would copy a 266 MB canvas first) in fixed
    ``DIGEST_CHUNK`` pieces hashed on a thread each (hashlib lets go of the GIL while it hashes): the digest
    is the hash of the pieces' hashes, the same on any machine, and a full-size canvas takes 0.08 s instead
    of 0.14 s on two cores."""
    digest = hashlib.sha1()
    for name in sorted(arrays):
        value = arrays[name]
        if isinstance(value, str):
            digest.update(f"{name}={value};".encode())
            continue
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        buffer = array.reshape(-1).view(np.uint8).data  # bytes of any fixed-size dtype (datetimes have no buffer format)
        pieces = [buffer[start:start + DIGEST_CHUNK] for start in range(0, len(buffer), DIGEST_CHUNK)]
        if len(pieces) > 1:
            with ThreadPoolExecutor(min(len(pieces), os.cpu_count() or 1)) as pool:
                hashed = list(pool.map(lambda piece: hashlib.sha1(piece).digest(), pieces))
        else:
            hashed = [hashlib.sha1(piece).digest() for piece in pieces]
        digest.update(b"".join(hashed))
    return digest.hexdigest()


@functools.cache
def _stdlib() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.realpath(paths[name]) + os.sep for name in ("stdlib", "platstdlib") if name in paths)


@functools.lru_cache(maxsize=4096)
def _outside_closure(file: str) -> bool:
    """Standard library or an installed distribution: not followed (see the module's docstring)."""
    path = os.path.realpath(file)
    return any(f"{os.sep}{folder}{os.sep}" in path for folder in _INSTALLED) or path.startswith(_stdlib())


def _framework(module_name: str) -> bool:
    return module_name.split(".")[0] in FRAMEWORK


def _namespace_of(obj: Any) -> tuple[str, str | None, Mapping[str, Any]] | None:
    """(module name, file, globals) of what defines ``obj``: a module, a function (its ``__globals__``, which
    a spec file loaded by path has though it is not in ``sys.modules``), or a class (its module's)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__, getattr(obj, "__file__", None), vars(obj)
    if isinstance(obj, types.FunctionType):
        return obj.__module__ or "", obj.__globals__.get("__file__"), obj.__globals__
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        if module is not None:
            return _namespace_of(module)
        methods = [v for v in vars(obj).values() if isinstance(v, types.FunctionType)]
        return _namespace_of(methods[0]) if methods else None
    return None


def _refers_to(value: Any) -> Any:
    """The module a namespace entry brings in: itself (a module), or what defines it (a function, a class,
    or the class of an instance: a module-level config object)."""
    if isinstance(value, (types.ModuleType, types.FunctionType, type)):
        return value
    return type(value)


def code_closure(roots: Iterable[Any]) -> list[Path]:
    """Every source file the ``roots`` (functions, classes, modules) import, transitively, sorted."""
    files: set[Path] = set()
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        found = _namespace_of(todo.pop())
        if found is None:
            continue
        name, file, namespace = found
        if not file or id(namespace) in seen or _framework(name) or _outside_closure(file):
            continue
        seen.add(id(namespace))
        files.add(Path(file).resolve())
        parts = name.split(".")
        packages = (".".join(parts[:i]) for i in range(1, len(parts)))  # their __init__ ran too
        todo.extend(sys.modules[p] for p in packages if p in sys.modules)
        todo.extend(_refers_to(value) for key, value in list(namespace.items()) if not key.startswith("__"))
    return sorted(files)


def code_digest(roots: Iterable[Any]) -> str:
    """The hash of every file in :func:`code_closure` of ``roots``: names and bytes."""
    digest = hashlib.sha256()
    for path in code_closure(roots):
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_digest(obj: Any) -> str:
    """The hash of every ``.py`` file under the top-level package that defines ``obj`` (this plugin's own code,
    as a whole: what stored outputs were computed by)."""
    module = sys.modules.get((getattr(obj, "__module__", "") or "").split(".")[0])
    source = getattr(module, "__file__", None) or (inspect.getsourcefile(obj) if inspect.isfunction(obj) else None)
    if not source:
        return "unknown"
    digest = hashlib.sha256()
    folder = Path(source).parent
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
