"""ruff and mypy over the plugin, the exporters and the model specs, in the default suite: CI fails on a finding, with
the tool's output.

Their settings are in pyproject.toml ([tool.ruff], [tool.mypy]); both come with the ``test`` extra. The training
configs under model_specs/*/configs/ are AWML's config language, not modules: pyproject leaves them out of mypy and
out of ruff's rules against AWML's style. mypy keeps its cache in the checkout's .mypy_cache (ignored by git): a
cold run takes ~13 s of CPU (~8 s of it the plugin and the exporters), a warm one ~0.3 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("pytest_awml", "exporters", "model_specs")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("tool, args", [
    ("ruff", ("check", "--no-fix", *CHECKED)),
    ("mypy", ("--cache-dir", str(ROOT / ".mypy_cache"), *CHECKED)),
], ids=["ruff", "mypy"])
def test_the_code_is_clean(tool, args):
    done = _run(tool, *args)
    if "No module named" in done.stderr:
        pytest.fail(f"{tool} is not installed: pip install -e '.[test]' (the test extra brings it)")
    assert done.returncode == 0, f"{tool} found problems (fix them, or see [tool.{tool}] in pyproject.toml):\n{done.stdout}{done.stderr}"
