"""The dependency arrows of docs/design.md, enforced: the framework never imports a model spec, and
the plugin's modules import each other without a cycle."""

import ast
import re
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


# a spec name that is also a word of the trade (int8 calibration data): only its uses as a name count, quoted or in a
# module path or a spec id (the word itself is how quantizers, ONNX Runtime's API included, name their input)
AS_NAME = {"calibration": re.compile(r"""(['"]calibration['"-]|model_specs\.calibration|calibration-tiny|specs/calibration)""")}


def test_no_model_name_is_hard_coded_in_the_framework():
    names = ("centerpoint", "yolox", "calibration")
    offenders = [f"{path.relative_to(ROOT)}: {name}" for package in ("pytest_awml", "exporters")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for name in names
                 if (AS_NAME[name].search(path.read_text().lower()) if name in AS_NAME else name in path.read_text().lower())]
    assert not offenders, "model knowledge in the framework:\n" + "\n".join(offenders)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports when it runs, lazily inside functions included;
    only imports under ``if TYPE_CHECKING:`` are left out (type checkers read those, Python never runs them)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import module` imports the module; `from pkg import name`, pkg
                module = f"{node.module}.{alias.name}"
                found |= {module} if module in known else ({node.module} & known)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for package in ("pytest_awml", "exporters") for p in (ROOT / package).rglob("*.py")}
    return {name: _runtime_imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_stash_keys_import_nothing_of_the_plugin():
    assert _graph()["pytest_awml.keys"] == set()


def test_errors_are_defined_in_one_place():
    """Every AwmlError subclass of the plugin is defined in pytest_awml/errors.py (or, for those exporters
    raise, exporters/errors.py) and re-exported there."""
    offenders = []
    for path in sorted((ROOT / "pytest_awml").rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith(("Error", "Exceeded", "Unavailable")) for b in node.bases):
                offenders.append(f"{path.relative_to(ROOT)}: class {node.name}")
    assert not offenders, "errors outside errors.py:\n" + "\n".join(offenders)
