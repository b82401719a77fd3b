"""Command-line options (each also an ini key) and their parsed, typed form."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError

DEFAULT_ARTIFACTS = ".awml/artifacts"
DEFAULT_SAMPLES = 3
DEFAULT_SEED = 0
REPORT_NAME = "awml-report.json"

# (option, ini type, default, help); option "--awml-x-y" ↔ ini "awml_x_y".
_OPTIONS = (
    ("--awml-spec", "args", [], "model spec to verify: a registered name or a path to a spec .py file (repeatable)"),
    ("--awml-backends", "string", "", "comma-separated backends to test (default: every registered backend; unimportable ones show as skipped)"),
    ("--awml-device", "string", "cpu", "device for the backends under test: cpu, cuda or cuda:N"),
    ("--awml-precision", "string", "fp32", "comma-separated precisions: fp32, fp16, tf32"),
    ("--awml-artifacts", "string", DEFAULT_ARTIFACTS, "artifact folder, relative to the rootdir"),
    ("--awml-checkpoint", "string", "", "checkpoint to load instead of seeded weights"),
    ("--awml-samples", "string", str(DEFAULT_SAMPLES), "number of seeded samples per spec"),
    ("--awml-seed", "string", str(DEFAULT_SEED), "seed for weights and samples"),
    ("--awml-report", "string", "", f"JSON report path (default: <artifacts>/{REPORT_NAME})"),
    ("--awml-data", "string", "", "real samples instead of synthetic ones: a file or a folder the spec can read"),
    ("--awml-data-option", "args", [], "KEY=VALUE passed to the spec's data reader, e.g. point_features=4 (repeatable)"),
)


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("awml", "pytest-awml: model deployment verification")
    for flag, ini_type, default, help_text in _OPTIONS:
        dest = flag[2:].replace("-", "_")
        if ini_type == "args":
            group.addoption(flag, action="append", dest=dest, default=None, metavar=dest.rsplit("_", 1)[-1].upper(), help=help_text)
        else:
            group.addoption(flag, action="store", dest=dest, default=None, help=f"{help_text} (ini: {dest})")
        parser.addini(dest, help_text, type=ini_type, default=default)


def _value(config: pytest.Config, dest: str):
    value = config.getoption(dest)
    return config.getini(dest) if value is None else value


@dataclass(frozen=True)
class AwmlOptions:
    specs: tuple[str, ...]
    backends: tuple[str, ...] | None
    device: Device
    precisions: tuple[Precision, ...]
    artifacts: Path
    checkpoint: Path | None
    samples: int
    seed: int
    report: Path
    data: Path | None = None
    data_options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: pytest.Config) -> "AwmlOptions":
        root = config.rootpath
        specs = tuple(s for s in (_value(config, "awml_spec") or []) if s)
        backends = tuple(b.strip() for b in str(_value(config, "awml_backends")).split(",") if b.strip()) or None
        precisions = tuple(dict.fromkeys(Precision.parse(p) for p in str(_value(config, "awml_precision")).split(",") if p.strip()))
        if not precisions:
            raise AwmlError("--awml-precision is empty: give fp32, fp16 or tf32")
        artifacts = _resolve(root, _value(config, "awml_artifacts"))
        checkpoint_text = str(_value(config, "awml_checkpoint") or "")
        checkpoint = _resolve(Path.cwd(), checkpoint_text) if checkpoint_text else None
        if checkpoint is not None and not checkpoint.is_file():
            raise AwmlError(f"--awml-checkpoint {checkpoint} does not exist")
        report_text = str(_value(config, "awml_report") or "")
        data_text = str(_value(config, "awml_data") or "")
        data = _resolve(Path.cwd(), data_text) if data_text else None
        if data is not None and not data.exists():
            raise AwmlError(f"--awml-data {data} does not exist")
        data_options = []
        for item in _value(config, "awml_data_option") or []:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise AwmlError(f"--awml-data-option {item!r} is not KEY=VALUE")
            data_options.append((key.strip(), value.strip()))
        return cls(
            specs=specs,
            backends=backends,
            device=Device.parse(str(_value(config, "awml_device"))),
            precisions=precisions,
            artifacts=artifacts,
            checkpoint=checkpoint,
            samples=_int(_value(config, "awml_samples"), "--awml-samples", minimum=1),
            seed=_int(_value(config, "awml_seed"), "--awml-seed", minimum=0),
            report=_resolve(Path.cwd(), report_text) if report_text else artifacts / REPORT_NAME,
            data=data,
            data_options=tuple(data_options),
        )


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _int(text, flag: str, minimum: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise AwmlError(f"{flag} {text!r} is not an integer") from None
    if value < minimum:
        raise AwmlError(f"{flag} must be >= {minimum}, got {value}")
    return value
