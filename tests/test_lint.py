"""ruff and mypy over the plugin and the exporters, in the default suite: CI fails on a finding, with the tool's output.

Their settings are in pyproject.toml ([tool.ruff], [tool.mypy]); both come with the ``test`` extra. mypy keeps its
cache in the checkout's .mypy_cache (ignored by git): a cold run takes ~10 s of CPU, a warm one ~1 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("pytest_awml", "exporters")


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
