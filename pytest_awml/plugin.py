"""pytest-awml's hooks, all in one place. Inert unless ``--awml-spec`` is given.

The hooks only wire; the work is in the modules they call: options (:mod:`pytest_awml.options`),
spec loading (:mod:`pytest_awml.spec_loader`), spec → test ids (:mod:`pytest_awml.cases`), records
and the JSON report (:mod:`pytest_awml.results`), the terminal summary (:mod:`pytest_awml.summary`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_awml import cases, hookspecs
from pytest_awml import options as awml_options
from pytest_awml import results as awml_results
from pytest_awml.errors import AwmlError
from pytest_awml.keys import NOTES, PLAN, RESULTS, STARTED, WRITTEN

RESULTS_PLUGIN = "awml-results"
FIXTURES_PLUGIN = "awml-fixtures"
NO_BENCHMARK_PLUGIN = "awml-no-benchmark"
BENCHMARK_PLUGIN = "benchmark"  # pytest-benchmark's entry-point name, what `-p no:benchmark` blocks
MARKERS = (
    f"{cases.MARKER}(kind): the test is expanded by pytest-awml into one case per spec/component/target",
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
        plan = _plan(config, opts)
    except AwmlError as exc:
        raise pytest.UsageError(f"pytest-awml: {exc}") from None
    config.stash[PLAN] = plan
    from pytest_awml import terminal

    config.stash[NOTES] = terminal.install(config, awml_options.xdist_worker(config))
    # Like junitxml, the collector is a plugin object of its own: it sees every report, the
    # workers' too under xdist.
    config.stash[RESULTS] = awml_results.Results()
    config.pluginmanager.register(config.stash[RESULTS], RESULTS_PLUGIN)
    from pytest_awml import fixtures

    config.pluginmanager.register(fixtures, FIXTURES_PLUGIN)
    if not config.pluginmanager.has_plugin(BENCHMARK_PLUGIN):
        config.pluginmanager.register(fixtures.NoBenchmark(), NO_BENCHMARK_PLUGIN)
    suite = str(cases.SUITE)
    if suite not in config.args:
        # `pytest --awml-spec x` with no paths runs the spec's suite alone; with explicit paths the
        # suite runs beside them. xdist workers receive the controller's args, already extended.
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            config.args.append(suite)
        else:
            config.args[:] = [suite]


def _plan(config: pytest.Config, opts: awml_options.AwmlOptions) -> cases.Plan:
    from pytest_awml import backends, builders, preflight, spec_loader

    specs = spec_loader.load_all(opts, rootdir=config.rootpath)
    backend_registry = backends.builtin()
    config.hook.pytest_awml_add_backends(registry=backend_registry)
    builder_registry = builders.builtin()
    config.hook.pytest_awml_add_builders(registry=builder_registry)
    plan = cases.Plan.build(opts, specs, backend_registry, builder_registry)
    preflight.check(plan)
    return plan


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what ``pytest_configure`` registered (pytester runs many sessions in one process)."""
    for name in (RESULTS_PLUGIN, FIXTURES_PLUGIN, NO_BENCHMARK_PLUGIN):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin, name)
    if NOTES in config.stash:
        from pytest_awml import terminal

        terminal.remove(config.stash[NOTES])
    keys: tuple[pytest.StashKey[Any], ...] = (PLAN, RESULTS, NOTES, WRITTEN)
    for key in keys:
        if key in config.stash:
            del config.stash[key]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    # The suite lives in site-packages, outside the user's rootdir, where pytest would give it an
    # empty node id ("::test_parity[...]"). A fixed one keeps ids the same on every install.
    if module_path == cases.SUITE:
        return pytest.Module.from_parent(parent, path=module_path, nodeid=cases.MODULE_ID)
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    plan = config.stash.get(PLAN, None)
    if plan is None:
        return []
    o = plan.options
    data = f"real samples from {o.data}" if o.data else None
    lines = []
    for spec in plan.specs:
        weights = awml_results.weights_of(o, spec)
        samples = data or f"{o.samples} synthetic {spec.sample_kind} (seed {o.seed})"
        lines.append(f"awml: spec {spec.name}: {weights}; {samples}; components {', '.join(c.name for c in spec.components)}")
    targets = ", ".join(t.id + (f" (skipped: {why})" if why else "") for t, why in plan.targets)
    worker = awml_options.xdist_worker(config)
    where = f" (xdist worker {worker})" if worker else ""
    lines.append(f"awml: device {o.device}{where}; targets {targets}; reference pytorch-cpu-fp32")
    lines.append(f"awml: artifacts {o.artifacts}; report {o.report}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(cases.MARKER)
    plan = metafunc.config.stash.get(PLAN, None)
    if marker is not None and plan is not None:
        metafunc.parametrize(cases.ARGUMENT, cases.parameters(plan, marker.args[0]))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> list | None:
    """A test kind no spec uses (a spec with no pipeline, no dynamic dims, no ``--awml-autoware``) is not collected:
    parametrized with no case it would be a "got empty parameter set" skip, and deselecting it showed as
    "1 deselected" in a run with no ``-k`` (issue 30). None: pytest collects the function as usual."""
    plan = collector.config.stash.get(PLAN, None)
    marker = next((m for m in getattr(obj, "pytestmark", ()) if m.name == cases.MARKER), None) if callable(obj) else None
    if plan is None or marker is None or plan.cases(marker.args[0]):
        return None
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    # A deliberate AwmlError says what went wrong and what to do: show that, not a traceback,
    # unless the user asked for tracebacks (--tb other than auto, or --fulltrace).
    if call.excinfo is not None and report.failed and isinstance(call.excinfo.value, AwmlError) and _short_errors(item.config):
        report.longrepr = _one_line(call.excinfo.value)
    return report


def _short_errors(config: pytest.Config) -> bool:
    return config.getoption("tbstyle", "auto") == "auto" and not config.getoption("fulltrace", False)


def _one_line(error: BaseException) -> str:
    """``Type: message``, and the first line of what caused it (``raise ... from exc``)."""
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    if cause is not None:
        lines = str(cause).strip().splitlines()
        text += f"\ncaused by {type(cause).__name__}" + (f": {lines[0]}" if lines else "")
    return text


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    plan = config.stash.get(PLAN, None)
    if plan is None or awml_options.xdist_worker(config) is not None:
        return
    collected = config.stash[RESULTS]
    if not config.option.collectonly:  # no test ran: an empty report would replace the last run's figures
        from pytest_awml import run_report

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        run = {**awml_results.run_info(plan.options, plan.specs, config.stash[STARTED]), "interrupted": interrupted,
               "selection": collected.selection(config)}
        config.stash[WRITTEN] = run_report.write(collected, plan.options.report, run, interrupted=interrupted)
    # every generated test skipped: a green run would claim what was never checked
    if session.exitstatus == pytest.ExitCode.OK and collected.verified_nothing and not plan.options.allow_missing_device:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """pytest-benchmark's machine_info knows no GPU, driver or runtime versions: add them."""
    if config.stash.get(PLAN, None) is not None:
        from pytest_awml.machine import machine_info as awml_machine_info

        machine_info.update(awml_machine_info())


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    plan = config.stash.get(PLAN, None)
    if plan is None or awml_options.xdist_worker(config) is not None:
        return
    from pytest_awml import summary

    terminalreporter.section("pytest-awml")
    collected = config.stash[RESULTS]
    written = config.stash.get(WRITTEN, None)
    for line in summary.lines(collected, written.path if written else None):
        terminalreporter.write_line(line)
    if written is None:
        terminalreporter.write_line("JSON report: none written (--collect-only runs no test)")
    for notice in written.notices if written else ():
        terminalreporter.write_line(f"WARNING: {notice}", yellow=True, bold=True)
    if exitstatus == pytest.ExitCode.OK and collected.verified_nothing and not plan.options.allow_missing_device:
        terminalreporter.write_line(
            f"pytest-awml: all {collected.skipped_count} generated test(s) were skipped: nothing was verified, so the run "
            f"fails (exit {int(pytest.ExitCode.NO_TESTS_COLLECTED)}). Fix what the skip reasons say, select tests that can "
            "run here, or pass --awml-allow-missing-device to accept a run that skips everything", red=True, bold=True)
    if not config.option.collectonly:  # the summary ends with where the run's time went
        terminalreporter.write_line(summary.time_spent(collected, time.time() - config.stash[STARTED]))
