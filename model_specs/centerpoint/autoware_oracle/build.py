"""Building Autoware's kernels from ``$AUTOWARE_ROOT`` into one shared library, with nvcc, loaded by ctypes.

Why nvcc + ctypes rather than ``torch.utils.cpp_extension``: Autoware's kernels are plain CUDA taking raw
device pointers and a stream, so a C ABI over them (``oracle_capi.cu``) needs no torch header; one nvcc call
per file (in parallel) builds in well under a minute where cpp_extension would compile torch's headers into
every translation unit, and the same command builds on any machine with nvcc, GPU or not. Tensors cross as
``data_ptr()`` on torch's current stream.

Nothing of Autoware is copied into this repository: the sources are read from the checkout at test time (as
``$AWML_ROOT`` is for AWML); ``COMMITS.txt`` there says which commit each file came from. What the checkout
lacks or names differently is bridged by ``shim/`` (docs/autoware-oracle.md lists it).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_awml.errors import BackendUnavailable

log = logging.getLogger(__name__)

ROOT_VARIABLE = "AUTOWARE_ROOT"
PACKAGE = Path("perception") / "autoware_lidar_centerpoint"
# The Autoware files compiled (the rest of the checkout is read by people, not by the build).
KERNELS = ("lib/preprocess/preprocess_kernel.cu", "lib/postprocess/postprocess_kernel.cu", "lib/postprocess/circle_nms_kernel.cu")
HERE = Path(__file__).parent
GLUE = ("oracle_core.cu", "oracle_capi.cu")  # this project's own code around them
SHIM = HERE / "shim"
BUILD_SECONDS = 600


def package_root(root: str | os.PathLike | None = None) -> Path:
    """``$AUTOWARE_ROOT``'s ``perception/autoware_lidar_centerpoint``; an unusable one is named with what to do."""
    given = root if root is not None else os.environ.get(ROOT_VARIABLE)
    if not given:
        raise BackendUnavailable(f"${ROOT_VARIABLE} is not set: point it at a checkout holding {PACKAGE} "
                                 "(autowarefoundation/autoware_universe, or the assembled checkout with its COMMITS.txt)")
    package = Path(given) / PACKAGE
    missing = [name for name in KERNELS if not (package / name).is_file()]
    if missing:
        raise BackendUnavailable(f"${ROOT_VARIABLE}={given} has no {', '.join(str(PACKAGE / m) for m in missing)}: "
                                 "point it at a checkout of autoware_universe")
    return package


def _sources(package: Path) -> list[Path]:
    return [package / name for name in KERNELS] + [HERE / name for name in GLUE]


def _digest(paths: list[Path], flags: list[str]) -> str:
    """The build's key: every compiled or included file's bytes and the flags (a changed checkout rebuilds)."""
    h = hashlib.sha256(" ".join(flags).encode())
    headers = sorted(p for folder in (paths[0].parents[2] / "include", SHIM) for p in folder.rglob("*.hpp"))
    for path in [*paths, *headers, HERE / "oracle_core.hpp"]:
        h.update(str(path.name).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build(arch: str, root: str | os.PathLike | None = None, cache: Path | None = None) -> Path:
    """The shared library for CUDA architecture ``arch`` (``sm_90``), built once per source digest into ``cache``."""
    package = package_root(root)
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise BackendUnavailable("nvcc is not on PATH: the Autoware oracle compiles Autoware's kernels with it")
    flags = ["-std=c++17", "-O3", f"-arch={arch}", "-Xcompiler", "-fPIC", "-I", str(package / "include"),
             "-I", str(SHIM / "include"), "-I", str(HERE), "-include", str(SHIM / "autoware_shim.hpp")]
    sources = _sources(package)
    folder = (cache or Path(tempfile.gettempdir()) / "pytest-awml-autoware") / _digest(sources, flags)
    library = folder / "libawml_autoware_oracle.so"
    if library.is_file():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    objects = [folder / f"{i}-{source.stem}.o" for i, source in enumerate(sources)]

    def compile_one(pair: tuple[Path, Path]) -> None:
        source, obj = pair
        _run([nvcc, *flags, "-c", str(source), "-o", str(obj)], source)

    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        list(pool.map(compile_one, zip(sources, objects, strict=True)))
    partial = folder / f".{library.name}.{os.getpid()}"
    _run([nvcc, "-shared", f"-arch={arch}", *map(str, objects), "-o", str(partial)], library)
    partial.replace(library)  # whole or not at all: a concurrent build's reader never sees half a library
    log.info("built Autoware's kernels from %s into %s", package, library)
    return library


def _run(command: list[str], what: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_SECONDS)
    if done.returncode != 0:
        raise BackendUnavailable(f"nvcc failed on {what} (exit {done.returncode}):\n{done.stderr[-4000:]}")


def load(library: Path) -> ctypes.CDLL:
    """The library with its C functions' signatures declared (ctypes would otherwise truncate pointers)."""
    lib = ctypes.CDLL(str(library))
    p, size, f32p, f64p = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double)
    text = ctypes.c_char_p
    lib.awml_box_fields.restype = size
    lib.awml_oracle_new.restype = p
    lib.awml_oracle_new.argtypes = [size, size, size, size, f64p, f64p, size, size, f32p, size, f32p, ctypes.c_float, f64p,
                                    ctypes.c_int, p, text, size]
    lib.awml_oracle_free.argtypes = [p]
    lib.awml_oracle_grid.argtypes = [p, ctypes.POINTER(size)]
    lib.awml_oracle_preprocess.restype = ctypes.c_longlong
    lib.awml_oracle_preprocess.argtypes = [p, size, ctypes.POINTER(p), ctypes.POINTER(size), f32p, f32p, size, text, size]
    lib.awml_oracle_buffers.argtypes = [p, ctypes.POINTER(p)]
    lib.awml_oracle_postprocess.restype = ctypes.c_longlong
    lib.awml_oracle_postprocess.argtypes = [p, p, p, p, p, p, p, text, size]
    lib.awml_oracle_boxes.restype = size
    lib.awml_oracle_boxes.argtypes = [p, f32p, size]
    lib.awml_copy_to_host.restype = ctypes.c_int
    lib.awml_copy_to_host.argtypes = [p, p, size]
    return lib
