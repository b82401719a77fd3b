"""JSON files a user hands the plugin (a latency baseline, a report for ``awml-report``, a consumer's schema),
read with one error for every way they can be unreadable.

A missing file, bytes that are not JSON, and JSON nested deeper than Python's stack (``json`` raises
RecursionError there) are the same finding for the person who passed the file: it cannot be read. Each
reader says what the file should have been; this module says why it was not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_awml.errors import AwmlError

REASON = "{reason}"
"""Where :func:`read_json` puts the reason in the message it is given."""


def read_json(path: Path, unreadable: str) -> Any:
    """The JSON document in ``path``; when it cannot be read, an :class:`AwmlError` with the message ``unreadable``,
    its ``{reason}`` replaced by why (the OS's words for a file error, ``nested too deeply``, the parser's error)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(getattr(exc, "strerror", None) or exc)
        raise AwmlError(unreadable.replace(REASON, reason)) from None
