"""The dependency arrows of DESIGN.md, enforced: the framework never imports a model spec."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package, forbidden", [("pytest_awml", ("model_specs",)), ("exporters", ("model_specs", "pytest_awml"))])
def test_framework_never_imports_downstream(package, forbidden):
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for line, name in _imports(path)
                 if name.split(".")[0] in forbidden]
    assert not offenders, "the dependency arrow is broken:\n" + "\n".join(offenders)


def test_no_model_name_is_hard_coded_in_the_framework():
    names = ("centerpoint", "yolox", "calibration")
    offenders = [f"{path.relative_to(ROOT)}: {name}" for package in ("pytest_awml", "exporters")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for name in names if name in path.read_text().lower()]
    assert not offenders, "model knowledge in the framework:\n" + "\n".join(offenders)
