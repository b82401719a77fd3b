"""pytest-awml's hooks, all in one place. Inert unless ``--awml-spec`` is given."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from pytest_awml import hookspecs, options as awml_options, results as awml_results
from pytest_awml.device import Device
from pytest_awml.errors import AwmlError

log = logging.getLogger("pytest_awml")

PLAN = pytest.StashKey["object"]()
RESULTS = pytest.StashKey["awml_results.Results"]()
STARTED = pytest.StashKey[float]()
SUITE = Path(__file__).with_name("suite.py")
MARKERS = (
    "awml_cases(kind): the test is expanded by pytest-awml into one case per spec/component/target",
    "full: opt-in runs of full-size models (select with -m full)",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    awml_options.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[STARTED] = time.time()
    try:
        opts = awml_options.AwmlOptions.from_config(config)
        if not opts.specs:
            return
        opts = _device_for_worker(config, opts)
        plan = _plan(config, opts)
    except AwmlError as exc:
        raise pytest.UsageError(f"pytest-awml: {exc}") from None
    config.stash[PLAN] = plan
    # Like junitxml, the collector is a plugin object of its own: it sees every report, the
    # workers' too under xdist.
    config.stash[RESULTS] = awml_results.Results()
    config.pluginmanager.register(config.stash[RESULTS], "awml-results")
    from pytest_awml import fixtures

    config.pluginmanager.register(fixtures, "awml-fixtures")
    suite = str(SUITE)
    if suite not in config.args:
        # `pytest --awml-spec x` with no paths runs the spec's suite alone; with explicit paths the
        # suite runs beside them. xdist workers receive the controller's args, already extended.
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            config.args.append(suite)
        else:
            config.args[:] = [suite]


def _device_for_worker(config: pytest.Config, opts):
    """Under pytest-xdist with ``--awml-device cuda`` (no index), worker gwN runs on GPU N mod count.

    Test ids keep the requested device (every worker must collect the same ids); the GPU a test
    really ran on is in its records (``gpu``, ``worker``) and in the summary.
    """
    worker = config.__dict__.get("workerinput", {}).get("workerid")
    if worker is None or not opts.device.is_cuda or str(config.getoption("awml_device") or config.getini("awml_device")).strip() != "cuda":
        return opts
    import dataclasses

    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return opts
    return dataclasses.replace(opts, worker=worker, gpu=Device("cuda", int(worker.lstrip("gw")) % count))


def _plan(config: pytest.Config, opts):
    from pytest_awml import backends as awml_backends, registry
    from pytest_awml.cases import Plan
    from pytest_awml.spec import validate

    specs = []
    for reference in opts.specs:
        for spec in registry.load(reference, rootdir=config.rootpath):
            if opts.config is not None:
                if spec.configure is None:
                    raise AwmlError(f"spec {spec.name!r} cannot read training configs (it declares no configure); drop --awml-config")
                spec = validate(spec.configure(opts.config), origin=str(opts.config))
            if opts.checkpoint is not None:  # a checkpoint that does not fit stops the run here, in one message
                from pytest_awml.workspace import load_model

                load_model(spec, opts)
            if spec.name in {s.name for s in specs}:
                raise AwmlError(f"spec {spec.name!r} is given twice")
            specs.append(spec)
    registry_ = awml_backends.builtin()
    config.hook.pytest_awml_add_backends(registry=registry_)
    return Plan.build(opts, specs, registry_)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    # The suite lives in site-packages, outside the user's rootdir, where pytest would give it an
    # empty node id ("::test_parity[...]"). A fixed one keeps ids the same on every install.
    if module_path == SUITE:
        return pytest.Module.from_parent(parent, path=module_path, nodeid="awml")
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    plan = config.stash.get(PLAN, None)
    if plan is None:
        return []
    o = plan.options
    weights = f"checkpoint {o.checkpoint}" if o.checkpoint else f"no checkpoint given: seeded weights (seed {o.seed})"
    data = f"real samples from {o.data}" if o.data else None
    lines = []
    for spec in plan.specs:
        samples = data or f"{o.samples} synthetic {spec.sample_kind} (seed {o.seed})"
        lines.append(f"awml: spec {spec.name}: {weights}; {samples}; components {', '.join(c.name for c in spec.components)}")
    targets = ", ".join(t.id + (f" (skipped: {why})" if why else "") for t, why in plan.targets)
    worker = config.__dict__.get("workerinput", {}).get("workerid")
    where = f" (xdist worker {worker})" if worker else ""
    lines.append(f"awml: device {o.device}{where}; targets {targets}; reference pytorch-cpu-fp32")
    lines.append(f"awml: artifacts {o.artifacts}; report {o.report}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("awml_cases")
    plan = metafunc.config.stash.get(PLAN, None)
    if marker is None or plan is None:
        return
    kind = marker.args[0]
    cases = {
        "export": plan.export_cases,
        "parity": plan.parity_cases,
        "latency": plan.latency_cases,
        "pipeline_parity": plan.pipeline_parity_cases,
        "pipeline_latency": plan.pipeline_latency_cases,
        "drift": plan.drift_cases,
        "shapes": plan.shape_cases,
        "bundle": plan.bundle_cases,
    }[kind]()
    params = [pytest.param(c, id=c.id, marks=[pytest.mark.skip(reason=c.skip)] if c.skip else []) for c in cases]
    metafunc.parametrize("awml_case", params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the placeholder pytest makes for a test kind that no spec uses (a spec with no
    pipeline, or no dynamic dims): "got empty parameter set" skips would only be noise."""
    if config.stash.get(PLAN, None) is None:
        return
    from pytest_awml.cases import CASE_TYPES

    empty = [i for i in items if i.get_closest_marker("awml_cases")
             and not isinstance(getattr(i, "callspec", None) and i.callspec.params.get("awml_case"), CASE_TYPES)]
    if empty:
        items[:] = [i for i in items if i not in empty]
        config.hook.pytest_deselected(items=empty)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    # A deliberate AwmlError says what went wrong and what to do: show that, not a traceback.
    if call.excinfo is not None and report.failed and isinstance(call.excinfo.value, AwmlError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    plan = config.stash.get(PLAN, None)
    if plan is None or _is_xdist_worker(config):
        return
    run = awml_results.run_info(plan.options, plan.specs, config.stash[STARTED])
    config.stash[RESULTS].write(plan.options.report, run)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """pytest-benchmark's machine_info knows no GPU, driver or runtime versions: add them."""
    if config.stash.get(PLAN, None) is not None:
        from pytest_awml.machine import machine_info as awml_machine_info

        machine_info.update(awml_machine_info())


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    plan = config.stash.get(PLAN, None)
    if plan is None or _is_xdist_worker(config):
        return
    from pytest_awml import summary

    terminalreporter.section("pytest-awml")
    for line in summary.lines(config.stash[RESULTS], plan.options.report):
        terminalreporter.write_line(line)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return "workerinput" in config.__dict__
