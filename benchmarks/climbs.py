"""How often does a test's call climb back up into a module it left? A call graph of one cold test.

    python benchmarks/climbs.py [--spec centerpoint-tiny] [-k "test_parity and pts_voxel_encoder and onnxruntime"]

Runs the selected tests in this process on an empty artifacts folder (cold: every export and inference is made)
and traces the test's call phase with ``sys.setprofile``. Only this project's modules count (``pytest_awml``,
``exporters``, ``model_specs``); a *climb* is a call into a module that is already on the stack below the caller's
module (``suite → workspace → models → workspace``: a callback up into a caller). Libraries between two project
frames (torch calling a model's ``forward``) are transparent, and so is a method calling another on its own
``self`` (a base class's template method and a subclass's override: inheritance, not a callback). Prints each climb's edge and the total per test. A
measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading

import pytest

PROJECT = ("pytest_awml", "exporters", "model_specs")
# A memo's get(key, make) calls the make it is given, as functools.cache or dict.setdefault would: with
# --memo-transparent it counts as the library it stands for, so that the climbs left are the project's own.
MEMO = "pytest_awml.memo"


def _module(frame, transparent: tuple[str, ...] = ()) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name.split(".")[0] in PROJECT and name not in transparent else None


class Climbs:
    """A pytest plugin that traces each test's call phase and counts the climbs in it."""

    def __init__(self, transparent: tuple[str, ...] = ()) -> None:
        self.by_test: dict[str, collections.Counter] = {}
        self.transparent = transparent

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        edges: collections.Counter = collections.Counter()
        stack: list[tuple[str | None, int | None]] = []  # each active frame's project module (None: a library's), its self

        def profile(frame, event, arg):
            if event == "call":
                module = _module(frame, self.transparent)
                this = id(frame.f_locals["self"]) if module is not None and "self" in frame.f_locals else None
                if module is not None:
                    caller = next((entry for entry in reversed(stack) if entry[0] is not None), None)
                    if (caller is not None and module != caller[0] and (this is None or this != caller[1])
                            and any(m == module for m, _ in stack)):
                        edges[f"{caller[0]} -> {module}"] += 1
                stack.append((module, this))
            elif event == "return" and stack:
                stack.pop()

        sys.setprofile(profile)
        threading.setprofile(None)  # worker threads (digest pieces) are leaves: not traced
        try:
            return (yield)
        finally:
            sys.setprofile(None)
            self.by_test[item.nodeid] = edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="centerpoint-tiny")
    parser.add_argument("-k", dest="select", default="test_parity and pts_voxel_encoder and onnxruntime")
    parser.add_argument("--memo-transparent", action="store_true", help=f"count {MEMO} as a library (see MEMO)")
    args = parser.parse_args()
    climbs = Climbs((MEMO,) if args.memo_transparent else ())
    with tempfile.TemporaryDirectory() as folder:
        pytest.main(["-q", "-p", "no:cacheprovider", "--benchmark-disable", f"--awml-spec={args.spec}", "-k", args.select,
                     f"--awml-artifacts={folder}/artifacts", f"--awml-report={folder}/report.json"], plugins=[climbs])
    for test, edges in climbs.by_test.items():
        print(f"{test}: {sum(edges.values())} climb(s)")
        for edge, count in edges.most_common():
            print(f"    {count:3d}  {edge}")


if __name__ == "__main__":
    main()
