"""One exception hierarchy, and how the plugin shows a deliberate error (short, or the traceback asked for)."""

from __future__ import annotations

import inspect

import pytest

import pytest_awml
from pytest_awml import checkpoints, errors

RAISES = """
from pytest_awml.errors import DataError


def _read():
    return int("x")


def test_reads():
    try:
        _read()
    except ValueError as exc:
        raise DataError("sample 3 is not a number; fix the data file") from exc
"""


def test_every_error_is_an_awml_error_exported_from_the_package():
    classes = {name: obj for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, errors.AwmlError)}
    assert set(classes) == set(errors.__all__)
    assert {"SpecError", "ExportError", "BackendUnavailable", "ToleranceExceeded", "CheckpointError", "DataError"} <= set(classes)
    for name, cls in classes.items():
        assert getattr(pytest_awml, name) is cls and name in pytest_awml.__all__
    assert checkpoints.CheckpointError is errors.CheckpointError


def test_default_display_is_one_line_with_the_cause(pytester):
    pytester.makepyfile(test_data=RAISES)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["DataError: sample 3 is not a number; fix the data file",
                                 "caused by ValueError: invalid literal for int() with base 10: 'x'"])
    assert "def _read" not in result.stdout.str()


@pytest.mark.parametrize("flag", ["--tb=long", "--tb=short", "--fulltrace"])
def test_asked_for_tracebacks_are_shown(pytester, flag):
    pytester.makepyfile(test_data=RAISES)
    result = pytester.runpytest(flag)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "_read()" in text and "DataError: sample 3 is not a number" in text and "caused by ValueError" not in text
