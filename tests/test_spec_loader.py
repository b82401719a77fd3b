"""Loading specs (pytest_awml.spec_loader): by file, by registered name, and for a whole run."""

from __future__ import annotations

import dataclasses

import pytest

import toy
from pytest_awml.errors import AwmlError, SpecError
from pytest_awml.spec_loader import GROUP, available, load, load_all

HEADER = "import dataclasses\nfrom toy import SPEC\n"


def test_a_file_with_specs_or_spec_or_any(tmp_path):
    (tmp_path / "many.py").write_text(HEADER + "SPECS = [dataclasses.replace(SPEC, name='a'), dataclasses.replace(SPEC, name='b')]\n")
    assert [s.name for s in load(str(tmp_path / "many.py"))] == ["a", "b"]
    (tmp_path / "one.py").write_text(HEADER + "OTHER = dataclasses.replace(SPEC, name='other')\nSPEC = dataclasses.replace(SPEC, name='one')\n")
    assert [s.name for s in load(str(tmp_path / "one.py"))] == ["one"]
    (tmp_path / "scan.py").write_text(HEADER.replace("SPEC\n", "SPEC as BASE\n") + "X = dataclasses.replace(BASE, name='x')\n")
    assert sorted(s.name for s in load(str(tmp_path / "scan.py"))) == ["toy", "x"]  # the imported one counts too


def test_a_relative_file_resolves_against_the_rootdir(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "mine.py").write_text(HEADER)
    assert [s.name for s in load("specs/mine.py", rootdir=tmp_path)] == ["toy"]


@pytest.mark.parametrize("source, words", [
    (None, "no such file"),
    ("raise RuntimeError('broken model code')", "importing it failed: RuntimeError: broken model code"),
    ("X = 1", "defines no ModelSpec"),
    (HEADER + "SPEC = dataclasses.replace(SPEC, name='Bad Name')", "'Bad Name' is not a valid name"),
])
def test_file_errors_name_the_file_and_the_fix(tmp_path, source, words):
    path = tmp_path / "spec.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(SpecError) as info:
        load(str(path))
    assert words in str(info.value) and "Fix:" in str(info.value)


def test_registered_names():
    assert GROUP == "pytest_awml.specs"
    assert "centerpoint-tiny" in available()
    with pytest.raises(SpecError, match="no spec of that name is registered.*use one of: .*centerpoint-tiny"):
        load("centrepoint")


def test_load_all_checks_the_whole_run(tmp_path):
    (tmp_path / "a.py").write_text(HEADER)
    options = toy.options(tmp_path, specs=(str(tmp_path / "a.py"),))
    assert [s.name for s in load_all(options)] == ["toy"]
    with pytest.raises(AwmlError, match="spec 'toy' is given twice"):
        load_all(dataclasses.replace(options, specs=options.specs * 2))
    with pytest.raises(AwmlError, match="cannot read training configs"):
        load_all(dataclasses.replace(options, config=tmp_path / "a.py"))
