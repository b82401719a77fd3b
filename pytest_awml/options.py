"""Command-line options (each also an ini key), their parsed and typed form, and what they
override in a spec for one run (tolerances, latency rounds). The xdist-worker check lives here too:
which worker this process is decides which GPU it uses."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_awml.deploy_config import DeployConfig
from pytest_awml.deploy_config import read as read_deploy_config
from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError
from pytest_awml.limits import LatencySettings, Tolerance
from pytest_awml.locks import DEFAULT_TIMEOUT_S as DEFAULT_LOCK_TIMEOUT_S
from pytest_awml.quantization import Calibration, Int8Settings

if TYPE_CHECKING:
    from pytest_awml.spec import Component

DEFAULT_ARTIFACTS = ".awml/artifacts"
DEFAULT_SAMPLES = 3
DEFAULT_SEED = 0
REPORT_NAME = "awml-report.json"

IniType = Literal["string", "args", "bool"]
# (option, ini type, default, help); option "--awml-x-y" ↔ ini "awml_x_y".
_OPTIONS: tuple[tuple[str, IniType, Any, str], ...] = (
    ("--awml-spec", "args", [], "model spec to verify: a registered name or a path to a spec .py file (repeatable)"),
    ("--awml-backends", "string", "", "comma-separated backends to test (default: every backend that runs on the device, plus TensorRT, shown as skipped with its reason where it cannot run)"),
    ("--awml-device", "string", "cpu", "device for the backends under test: cpu, cuda or cuda:N"),
    ("--awml-precision", "string", "fp32", "comma-separated precisions: fp32, fp16, tf32, int8"),
    ("--awml-artifacts", "string", DEFAULT_ARTIFACTS, "artifact folder, relative to the invocation folder"),
    ("--awml-checkpoint", "string", "", "checkpoint to load instead of seeded weights"),
    ("--awml-samples", "string", str(DEFAULT_SAMPLES), "number of seeded samples per spec"),
    ("--awml-seed", "string", str(DEFAULT_SEED), "seed for weights and samples"),
    ("--awml-report", "string", "", f"JSON report path (default: <artifacts>/{REPORT_NAME})"),
    ("--awml-data", "string", "", "real samples instead of synthetic ones: a file or a folder the spec can read"),
    ("--awml-data-option", "args", [], "KEY=VALUE passed to the spec's data reader, e.g. point_features=4 (repeatable)"),
    ("--awml-golden", "string", "", "folder of golden outputs: enables test_drift and the error history"),
    ("--awml-update-golden", "bool", False, "(re)write the golden outputs from today's PyTorch model"),
    ("--awml-drift-trend", "bool", False, "fail a test whose error grew past the spec's trend factor over its recorded baseline"),
    ("--awml-tolerance", "args", [], "override tolerances for this run: ATOL[,RTOL] for all outputs or OUTPUT=ATOL[,RTOL] (repeatable)"),
    ("--awml-trust-checkpoint", "bool", False, "allow a checkpoint that needs pickle (runs code from the file: only for files you trust)"),
    ("--awml-config", "string", "", "training config (AWML/mmdet3d .py) the spec rebuilds its model from"),
    ("--awml-deploy-config", "string", "", "AWML deploy config (deployment framework's deploy_config.py or an mmdeploy config): opset, dynamic axes, TensorRT profiles, precision policy, verification scenarios, evaluation backends, default checkpoint"),
    ("--awml-autoware", "string", "", "write the deployable bundle (ONNX files + parameter file) into this folder; its graphs join the run"),
    ("--awml-autoware-schema", "string", "", "validate the bundle's manifest against a consumer's schema (a file, or a folder holding ml_package.schema.json)"),
    ("--awml-rounds", "string", "", "timed rounds per latency test (overrides the spec)"),
    ("--awml-warmup", "string", "", "warm-up rounds per latency test (overrides the spec)"),
    ("--awml-latency-baseline", "string", "", "pytest-benchmark JSON of an earlier run: each test's median is held to its spec's regression threshold"),
    ("--awml-hypothesis-profile", "string", "", "hypothesis profile for test_shapes: ci (derandomized, bounded) or dev (default; ci when $CI is set)"),
    ("--awml-lock-timeout", "string", f"{DEFAULT_LOCK_TIMEOUT_S:g}", "seconds to wait for a lock another run holds on an artifact or golden set before failing with its holder's pid and host"),
    ("--awml-rerun-backends", "bool", False, "run every backend again instead of replaying the outputs an earlier run stored for the same file, runtime, machine and input (each stored file that differs is reported and replaced)"),
    ("--awml-no-localize", "bool", False, "on a parity failure, do not look for the first module that diverges (forward hooks and every graph tensor of one input: memory and time for very large models)"),
    ("--awml-int8-calibration", "string", "", "int8 calibration method for every component (overrides the spec): minmax, entropy or percentile"),
    ("--awml-int8-samples", "string", "", "int8 calibration samples per component (overrides the spec)"),
    ("--awml-int8-sensitivity", "bool", False, "rank each quantized layer's cost to the heads and the metric (test_int8_sensitivity), and the smallest set to keep in float"),
    ("--awml-allow-missing-device", "bool", False, "let a run whose --awml-device is absent (no GPU) skip its tests and pass; without it that is a usage error, and a run whose every test skipped fails"),
)


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("awml", "pytest-awml: model deployment verification")
    for flag, ini_type, default, help_text in _OPTIONS:
        dest = flag[2:].replace("-", "_")
        if ini_type == "args":
            group.addoption(flag, action="append", dest=dest, default=None, metavar=dest.rsplit("_", 1)[-1].upper(), help=help_text)
        elif ini_type == "bool":
            group.addoption(flag, action="store_true", dest=dest, default=None, help=f"{help_text} (ini: {dest})")
        else:
            group.addoption(flag, action="store", dest=dest, default=None, help=f"{help_text} (ini: {dest})")
        parser.addini(dest, help_text, type=ini_type, default=default)


def _value(config: pytest.Config, dest: str):
    value = config.getoption(dest)
    return config.getini(dest) if value is None else value


def xdist_worker(config: pytest.Config) -> str | None:
    """The pytest-xdist worker id (``gw0``…) of this process, or None on the controller or
    without xdist: the one check for "is this a worker" (xdist sets ``workerinput`` on workers)."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else workerinput["workerid"]


@dataclass(frozen=True)
class ToleranceOverrides:
    """``--awml-tolerance`` values: one for every output (``all``) and/or per output name."""

    all: Tolerance | None = None
    per_output: tuple[tuple[str, Tolerance], ...] = ()

    @classmethod
    def parse(cls, items) -> ToleranceOverrides:
        everything, per_output = None, {}
        for item in items:
            name, sep, value = str(item).rpartition("=")
            try:
                numbers = [float(v) for v in value.split(",")]
                if not 1 <= len(numbers) <= 2:
                    raise ValueError
                tol = Tolerance(numbers[0], numbers[1] if len(numbers) == 2 else 0.0)
                if tol.problems():
                    raise ValueError
            except ValueError:
                raise AwmlError(f"--awml-tolerance {item!r}: use ATOL[,RTOL] or OUTPUT=ATOL[,RTOL] with numbers >= 0") from None
            if sep:
                per_output[name.strip()] = tol
            else:
                everything = tol
        return cls(everything, tuple(per_output.items()))

    def apply(self, output: str, tolerance: Tolerance) -> Tolerance:
        return dict(self.per_output).get(output) or self.all or tolerance

    def __bool__(self) -> bool:
        return self.all is not None or bool(self.per_output)

    def as_dict(self) -> dict:
        found = {name: [t.atol, t.rtol] for name, t in self.per_output}
        if self.all is not None:
            found["*"] = [self.all.atol, self.all.rtol]
        return found


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
    golden: Path | None = None
    update_golden: bool = False
    drift_trend: bool = False
    tolerances: ToleranceOverrides = ToleranceOverrides()
    hypothesis_profile: str = "dev"
    rounds: int | None = None
    warmup: int | None = None
    latency_baseline: Path | None = None
    trust_checkpoint: bool = False
    config: Path | None = None
    deploy: DeployConfig | None = None  # --awml-deploy-config, read
    autoware: Path | None = None
    autoware_schema: Path | None = None
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    allow_missing_device: bool = False
    rerun_backends: bool = False
    localize: bool = True  # on a parity failure, name the first module that diverges (--awml-no-localize: off)
    int8_calibration: Calibration | None = None  # --awml-int8-calibration: overrides every component's
    int8_samples: int | None = None  # --awml-int8-samples
    int8_sensitivity: bool = False
    worker: str | None = None  # pytest-xdist worker id
    gpu: Device | None = None  # the GPU this worker really uses when --awml-device is plain "cuda"

    def physical(self, device: Device) -> Device:
        """The device a target on ``device`` runs on in this process."""
        return self.gpu if (self.gpu is not None and device.is_cuda) else device

    # -- what the options override in a spec, for this run ----------------------------------------
    def parity_tolerances(self, component: Component, precision: Precision | str) -> dict[str, Tolerance]:
        """The spec's tolerances at ``precision``, with ``--awml-tolerance`` applied, per output."""
        return {name: self.tolerances.apply(name, component.tolerance(precision, name)) for name in component.output_names}

    def drift_tolerances(self, component: Component) -> dict[str, Tolerance]:
        """The spec's drift tolerances, with ``--awml-tolerance`` applied, per output."""
        return {name: self.tolerances.apply(name, component.drift_tolerance(name)) for name in component.output_names}

    def int8(self, component: Component) -> Int8Settings:
        """The component's int8 settings with ``--awml-int8-calibration``/``--awml-int8-samples`` applied."""
        settings = component.int8
        return dataclasses.replace(settings, calibration=self.int8_calibration or settings.calibration,
                                   samples=self.int8_samples or settings.samples)

    def latency(self, settings: LatencySettings) -> LatencySettings:
        """The spec's latency settings with ``--awml-rounds``/``--awml-warmup`` applied."""
        return dataclasses.replace(settings, rounds=self.rounds or settings.rounds,
                                   warmup_rounds=settings.warmup_rounds if self.warmup is None else self.warmup)

    @classmethod
    def from_config(cls, config: pytest.Config) -> AwmlOptions:
        # Relative paths resolve against the invocation folder, not the rootdir: pytest picks its
        # rootdir before plugins load, so the value of `--awml-golden DIR` (space, not '=') can
        # become the rootdir, and artifacts would land inside the golden folder.
        root = config.invocation_params.dir
        specs = tuple(s for s in (_value(config, "awml_spec") or []) if s)
        backends = tuple(b.strip() for b in str(_value(config, "awml_backends")).split(",") if b.strip()) or None
        precisions = tuple(dict.fromkeys(Precision.parse(p) for p in str(_value(config, "awml_precision")).split(",") if p.strip()))
        if not precisions:
            raise AwmlError("--awml-precision is empty: give fp32, fp16, tf32 or int8")
        deploy_path = _existing(root, _value(config, "awml_deploy_config"), "--awml-deploy-config")
        deploy = read_deploy_config(deploy_path) if deploy_path is not None else None
        artifacts = _resolve(root, _value(config, "awml_artifacts"))
        checkpoint = _existing(root, _value(config, "awml_checkpoint"), "--awml-checkpoint", file=True)
        if checkpoint is None and deploy is not None and deploy.checkpoint:  # the deploy config's checkpoint_path is the default
            checkpoint = _resolve(root, deploy.checkpoint)
            if not checkpoint.is_file():
                raise AwmlError(f"--awml-deploy-config {deploy.path}: checkpoint_path {deploy.checkpoint!r} names {checkpoint}, "
                                "which does not exist. Fix: pass --awml-checkpoint=PATH (it overrides checkpoint_path), or run "
                                "from the folder the path is relative to")
        report = _optional(root, _value(config, "awml_report"))
        data = _existing(root, _value(config, "awml_data"), "--awml-data")
        golden = _optional(root, _value(config, "awml_golden"))
        update_golden = bool(_value(config, "awml_update_golden"))
        if update_golden and golden is None:
            raise AwmlError("--awml-update-golden needs --awml-golden=DIR: where should the golden outputs go?")
        data_options = []
        for item in _value(config, "awml_data_option") or []:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise AwmlError(f"--awml-data-option {item!r} is not KEY=VALUE")
            data_options.append((key.strip(), value.strip()))
        options = cls(
            specs=specs,
            backends=backends,
            device=Device.parse(str(_value(config, "awml_device"))),
            precisions=precisions,
            artifacts=artifacts,
            checkpoint=checkpoint,
            samples=_int(_value(config, "awml_samples"), "--awml-samples", minimum=1),
            seed=_int(_value(config, "awml_seed"), "--awml-seed", minimum=0),
            report=report or artifacts / REPORT_NAME,
            data=data,
            data_options=tuple(data_options),
            golden=golden,
            update_golden=update_golden,
            drift_trend=bool(_value(config, "awml_drift_trend")),
            tolerances=ToleranceOverrides.parse(_value(config, "awml_tolerance") or []),
            hypothesis_profile=_profile(str(_value(config, "awml_hypothesis_profile") or "")),
            rounds=_int(rounds, "--awml-rounds", minimum=1) if (rounds := _value(config, "awml_rounds")) else None,
            warmup=_int(warmup, "--awml-warmup", minimum=0) if (warmup := _value(config, "awml_warmup")) not in (None, "") else None,
            latency_baseline=_existing(root, _value(config, "awml_latency_baseline"), "--awml-latency-baseline"),
            trust_checkpoint=bool(_value(config, "awml_trust_checkpoint")),
            config=_existing(root, _value(config, "awml_config"), "--awml-config"),
            deploy=deploy,
            autoware=_optional(root, _value(config, "awml_autoware")),
            autoware_schema=_existing(root, _value(config, "awml_autoware_schema"), "--awml-autoware-schema"),
            lock_timeout_s=_seconds(_value(config, "awml_lock_timeout"), "--awml-lock-timeout"),
            allow_missing_device=bool(_value(config, "awml_allow_missing_device")),
            rerun_backends=bool(_value(config, "awml_rerun_backends")),
            localize=not _value(config, "awml_no_localize"),
            int8_calibration=_calibration(str(_value(config, "awml_int8_calibration") or "")),
            int8_samples=_int(n, "--awml-int8-samples", minimum=1) if (n := _value(config, "awml_int8_samples")) else None,
            int8_sensitivity=bool(_value(config, "awml_int8_sensitivity")),
        )
        if options.autoware_schema is not None and options.autoware is None:
            raise AwmlError("--awml-autoware-schema checks a bundle: give --awml-autoware=DIR too")
        for flag, folder in (("--awml-autoware", options.autoware), ("--awml-artifacts", options.artifacts),
                             ("--awml-golden", options.golden)):
            if folder is not None and folder.exists() and not folder.is_dir():
                raise AwmlError(f"{flag} {folder} is a file: give a folder (it is created if missing)")
        if options.report.is_dir():
            raise AwmlError(f"--awml-report {options.report} is a folder: give a file path, e.g. {options.report / REPORT_NAME}")
        return options.for_worker(xdist_worker(config), requested_any_cuda=str(_value(config, "awml_device")).strip() == "cuda")

    def for_worker(self, worker: str | None, requested_any_cuda: bool) -> AwmlOptions:
        """Under pytest-xdist with ``--awml-device cuda`` (no index), worker gwN runs on GPU N mod count.

        Test ids keep the requested device (every worker must collect the same ids); the GPU a test
        really ran on is in its records (``gpu``, ``worker``) and in the summary.
        """
        if worker is None or not requested_any_cuda or not self.device.is_cuda:
            return self
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            return self
        return dataclasses.replace(self, worker=worker, gpu=Device("cuda", int(worker.lstrip("gw")) % count))


def _calibration(text: str) -> Calibration | None:
    if not text:
        return None
    try:
        return Calibration(text.strip().lower())
    except ValueError:
        raise AwmlError(f"--awml-int8-calibration {text!r}: use one of {', '.join(c.value for c in Calibration)}") from None


def _profile(text: str) -> str:
    profile = text or ("ci" if os.environ.get("CI") else "dev")
    if profile not in ("ci", "dev"):
        raise AwmlError(f"--awml-hypothesis-profile {text!r}: use ci or dev")
    return profile


def _optional(root: Path, text) -> Path | None:
    """The path an optional option gives (resolved against ``root``), or None when it is not given."""
    return _resolve(root, str(text)) if text else None


def _existing(root: Path, text, flag: str, file: bool = False) -> Path | None:
    """:func:`_optional`, refused when nothing (with ``file``: no file) is there."""
    path = _optional(root, text)
    if path is not None and not (path.is_file() if file else path.exists()):
        raise AwmlError(f"{flag} {path} does not exist")
    return path


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _seconds(text, flag: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise AwmlError(f"{flag} {text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise AwmlError(f"{flag} must be a finite number of seconds >= 0, got {text!r}")
    return value


def _int(text, flag: str, minimum: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise AwmlError(f"{flag} {text!r} is not an integer") from None
    if value < minimum:
        raise AwmlError(f"{flag} must be >= {minimum}, got {value}")
    return value
