"""PCD point clouds (ascii, binary, and the binary_compressed PCL tools write for recorded scans).

pypcd4 reads the data; the header is checked here first, field by field, because pypcd4 turns a
malformed header into a bare ``ValueError`` (``SIZE four``), a ``KeyError`` (``SIZE 3`` with
``TYPE F``) or an allocation sized by the header (``COUNT 100000000000``) that never names the file or
the field. Every problem is a :class:`DataError` naming the file and the header field.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from pytest_awml.errors import DataError

# A PCD header is a dozen short lines; past these bounds the file is not a PCD (or not its header).
HEADER_LINES, HEADER_LINE_BYTES = 32, 4096
# Values per point (the sum of COUNT): a lidar point has a handful, PCL's largest descriptor (VFH) 308.
# pypcd4 builds one dtype field per value, so a header's COUNT alone could hang the reader.
MAX_VALUES_PER_POINT = 4096
# LZF (binary_compressed) encodes at most 264 bytes in a 3-byte back-reference: a header claiming
# more expansion than that is not a compressed PCD, and pypcd4 would allocate what it claims.
LZF_MAX_RATIO = 264 / 3
# What pypcd4 (numpy, pydantic, lzf, struct underneath) raises on data it cannot read.
_PCD_ERRORS = (ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, OSError, struct.error, UnicodeDecodeError,
               MemoryError)
_TYPES = {"F": (4, 8), "U": (1, 2, 4, 8), "I": (1, 2, 4, 8)}  # PCD's TYPE letter -> the SIZEs numpy (and pypcd4) read
_INTEGERS = {"WIDTH": 0, "HEIGHT": 0, "POINTS": 0, "SIZE": 1, "COUNT": 1}  # field -> smallest allowed value
_ONE_VALUE = ("VERSION", "WIDTH", "HEIGHT", "POINTS", "DATA")
VIEWPOINT_VALUES = 7  # translation x y z and quaternion w x y z


def header(path: Path) -> tuple[list[str], int]:
    """The header lines up to DATA and where the data starts."""
    lines = []
    with open(path, "rb") as handle:
        for _ in range(HEADER_LINES):
            text = handle.readline(HEADER_LINE_BYTES).decode("ascii", "replace").strip()
            if text and not text.startswith("#"):
                lines.append(text)
            if text.upper().startswith("DATA"):
                return lines, handle.tell()
    raise DataError(f"{path}: no PCD header (no DATA line in its first {HEADER_LINES} lines)")


def header_problems(lines: list[str]) -> list[str]:
    """What is wrong with each header field, named as the file spells it (``SIZE: 'four' is not a whole
    number``); empty when pypcd4 can parse the header and build the point type from it."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        key, *values = line.split()
        fields[key.upper()] = values
    names = fields.get("FIELDS", [])

    def where(key: str, i: int) -> str:
        if key in _ONE_VALUE:
            return key
        return f"{key} of field {names[i]}" if i < len(names) else f"{key} (value {i + 1})"

    problems = []
    for key, least in _INTEGERS.items():
        for i, value in enumerate(fields.get(key, [])):
            if not value.lstrip("-").isdigit():
                problems.append(f"{where(key, i)}: {value!r} is not a whole number")
            elif int(value) < least:
                problems.append(f"{where(key, i)}: {value} is below {least}")
    for key in _ONE_VALUE:
        if key in fields and len(fields[key]) != 1:
            problems.append(f"{key}: {len(fields[key])} values, expected one")
    for i, letter in enumerate(fields.get("TYPE", [])):
        if letter not in _TYPES:
            problems.append(f"{where('TYPE', i)}: {letter!r} is not F, U or I")
    viewpoint = fields.get("VIEWPOINT")
    if viewpoint is not None and (len(viewpoint) != VIEWPOINT_VALUES or not all(_is_number(v) for v in viewpoint)):
        problems.append(f"VIEWPOINT: {' '.join(viewpoint)!r} is not {VIEWPOINT_VALUES} numbers (x y z qw qx qy qz)")
    if problems:
        return problems
    sizes, types, counts = (fields.get(k, []) for k in ("SIZE", "TYPE", "COUNT"))
    if len({len(names), len(sizes), len(types), len(counts)}) == 1:  # pypcd4 indexes SIZE/TYPE/COUNT by FIELDS
        for name, size, letter in zip(names, sizes, types, strict=True):
            if int(size) not in _TYPES[letter]:
                problems.append(f"SIZE/TYPE of field {name}: TYPE {letter} with SIZE {size}; "
                                f"{letter} is {' or '.join(map(str, _TYPES[letter]))} bytes")
        total = sum(int(c) for c in counts)
        if total > MAX_VALUES_PER_POINT:
            problems.append(f"COUNT: {total} values per point, over the {MAX_VALUES_PER_POINT} a point cloud has")
    return problems


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read(path: Path) -> np.ndarray:
    """[N, 4] x, y, z, intensity (zeros when the file has none) as float32."""
    from pydantic import ValidationError
    from pypcd4 import MetaData, PointCloud

    lines, data_offset = header(path)
    problems = header_problems(lines)
    if problems:
        raise DataError(f"{path}: malformed PCD header ({'; '.join(problems)})")
    try:
        meta = MetaData.parse_header(lines)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']).upper() or 'header'}: {e['msg']}" for e in exc.errors()]
        raise DataError(f"{path}: malformed PCD header ({'; '.join(problems)})") from None
    lengths = {"FIELDS": len(meta.fields), "SIZE": len(meta.size), "TYPE": len(meta.type), "COUNT": len(meta.count)}
    if len(set(lengths.values())) != 1:  # pypcd4 indexes SIZE/TYPE/COUNT by FIELDS and would ignore extras
        raise DataError(f"{path}: the PCD header's lines disagree on the number of fields "
                        f"({', '.join(f'{k} {v}' for k, v in lengths.items())})")
    missing = [f for f in ("x", "y", "z") if f not in meta.fields]
    if missing:
        raise DataError(f"{path}: PCD has no field(s) {missing}; it has {list(meta.fields)}")
    _check_data_size(path, meta, data_offset)
    try:
        cloud = PointCloud.from_path(path)
    except _PCD_ERRORS as exc:
        raise DataError(f"{path}: pypcd4 cannot read its {meta.data.value} data ({type(exc).__name__}: {exc})") from None
    table = np.atleast_1d(cloud.pc_data)  # an ascii file of one point loads as a 0-d record
    if len(table) != meta.points:
        raise DataError(f"{path}: the PCD header says {meta.points} points, the file holds {len(table)} (cut short?)")
    names = table.dtype.names or ()  # pypcd4's points are records: their fields always have names
    multi = [f for f in ("x", "y", "z") if f not in names]
    if multi:
        raise DataError(f"{path}: PCD field(s) {multi} have COUNT > 1; x, y and z must be single values")
    intensity = table["intensity"] if "intensity" in names else np.zeros(len(table), np.float32)
    return np.column_stack([table["x"], table["y"], table["z"], intensity]).astype(np.float32)


def _check_data_size(path: Path, meta, data_offset: int) -> None:
    """Hold the header's POINTS to the bytes the file has, before pypcd4 allocates for them."""
    available, itemsize = path.stat().st_size - data_offset, meta.build_dtype().itemsize
    if meta.data.value == "binary" and available < meta.points * itemsize:
        raise DataError(f"{path}: binary PCD is {available} bytes of data, the header says {meta.points} points x {itemsize} "
                        "bytes (cut short?)")
    if meta.data.value in ("binary_compressed", "binaryscompressed") and meta.points:
        with open(path, "rb") as handle:
            handle.seek(data_offset)
            sizes = handle.read(8)
        if len(sizes) < 8:
            raise DataError(f"{path}: binary_compressed PCD has no compressed-size words after DATA (cut short?)")
        compressed, uncompressed = struct.unpack("<II", sizes)
        if uncompressed != meta.points * itemsize or compressed > available - 8 or uncompressed > LZF_MAX_RATIO * compressed + 32:
            raise DataError(f"{path}: POINTS: the header says {meta.points} points x {itemsize} bytes, the compressed data says "
                            f"{uncompressed} bytes from {compressed} ({available - 8} in the file): pypcd4 cannot read its "
                            "binary_compressed data")
