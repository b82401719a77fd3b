"""What is checked once the plan is resolved and before any test runs: inputs the options name that
only make sense against the specs (output names, data-reader keys), the device the run asked for,
the folders it will write, the latency baseline and the consumer's schema it will read.

Each problem is an :class:`~pytest_awml.errors.AwmlError` whose message names the option and the
fix; the plugin turns it into a usage error (exit 4) before a test has run. Found later, the same
problem cost a whole run (a read-only artifacts folder failed after every test had passed) or was
silently ignored (a typo in an output name left the spec's tolerance in force).
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_awml import schema
from pytest_awml.budgets import load_benchmarks
from pytest_awml.cases import Plan
from pytest_awml.device import absent_reason
from pytest_awml.errors import AwmlError

PROBE_PREFIX = ".awml-write-probe-"


def check(plan: Plan) -> None:
    """Raise the first problem found, in the order a user would fix them."""
    options = plan.options
    _tolerance_names(plan)
    _data_options(plan)
    reason = absent_reason(options.device)
    if reason and not options.allow_missing_device:
        raise AwmlError(f"--awml-device {options.device}: {reason}. Run on a machine that has it, choose another with "
                        "--awml-device, or pass --awml-allow-missing-device to let its tests skip")
    folders = [("--awml-artifacts", options.artifacts), ("--awml-report", options.report.parent)]
    folders += [(flag, folder) for flag, folder in (("--awml-golden", options.golden), ("--awml-autoware", options.autoware))
                if folder is not None]
    for flag, folder in folders:
        writable(flag, folder)
    if options.latency_baseline is not None:
        load_benchmarks(options.latency_baseline)
    if options.autoware_schema is not None:
        schema.load(options.autoware_schema)


def _tolerance_names(plan: Plan) -> None:
    known = {name for spec in plan.specs for component in _components(plan, spec) for name in component.output_names}
    unknown = [name for name, _ in plan.options.tolerances.per_output if name not in known]
    if unknown:
        raise AwmlError(f"--awml-tolerance names no output of the specs in this run: {', '.join(sorted(unknown))}. "
                        f"Outputs are: {', '.join(sorted(known))}")


def _components(plan: Plan, spec):
    return spec.components + (spec.bundle_components if plan.options.autoware is not None else ())


def _data_options(plan: Plan) -> None:
    options = plan.options
    if options.data is None:
        if options.data_options:
            raise AwmlError("--awml-data-option has no effect without --awml-data=FILE|DIR: give both, or drop it")
        return
    for spec in plan.specs:
        if spec.load_data is None:
            raise AwmlError(f"spec {spec.name!r} cannot read data files (it declares no load_data): drop --awml-data")
        unknown = [key for key, _ in options.data_options if key not in spec.data_options]
        if unknown:
            known = "; ".join(f"{key}: {meaning}" for key, meaning in spec.data_options.items()) or "none"
            raise AwmlError(f"--awml-data-option {', '.join(unknown)}: spec {spec.name!r} reads no such key. Known keys: {known}")


def writable(flag: str, folder: Path) -> None:
    """Create ``folder`` if need be and write a file in it, or raise naming ``flag``."""
    probe = folder / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise AwmlError(f"{flag} {folder} cannot be written ({exc.strerror or exc}): give a folder this user can write") from None
