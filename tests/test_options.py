"""Options (pytest_awml.options): parsing, the overrides they apply to a spec, the xdist-worker check."""

from __future__ import annotations

import types

import pytest

import toy
from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError
from pytest_awml.limits import LatencySettings, Tolerance
from pytest_awml.options import AwmlOptions, ToleranceOverrides, xdist_worker


def test_tolerance_overrides():
    overrides = ToleranceOverrides.parse(["0", "heatmap=1e-4,1e-3"])
    assert overrides.apply("heatmap", Tolerance(1, 1)) == Tolerance(1e-4, 1e-3)
    assert overrides.apply("reg", Tolerance(1, 1)) == Tolerance(0, 0)
    assert overrides.as_dict() == {"heatmap": [1e-4, 1e-3], "*": [0.0, 0.0]}
    assert not ToleranceOverrides.parse([]) and ToleranceOverrides.parse([]).apply("x", Tolerance(1)) == Tolerance(1)
    for bad in ("abc", "heatmap=1,2,3", "x=-1", "nan"):
        with pytest.raises(AwmlError, match="ATOL"):
            ToleranceOverrides.parse([bad])


def test_overrides_live_on_the_options(tmp_path):
    enc = toy.SPEC.components[0]
    plain = toy.options(tmp_path)
    assert plain.parity_tolerances(enc, Precision.FP32) == {"y": Tolerance(1e-5, 1e-5)}
    assert plain.drift_tolerances(enc) == {"y": Tolerance(1e-5, 1e-5)}  # the Component's default drift bound
    loose = toy.options(tmp_path, tolerances=ToleranceOverrides.parse(["y=0.5"]))
    assert loose.parity_tolerances(enc, "fp32") == {"y": Tolerance(0.5, 0.0)} == loose.drift_tolerances(enc)
    settings = LatencySettings(rounds=20, warmup_rounds=3, max_time_s=9.0)
    assert plain.latency(settings) == settings
    assert toy.options(tmp_path, rounds=4, warmup=0).latency(settings) == LatencySettings(rounds=4, warmup_rounds=0, max_time_s=9.0)


def test_one_xdist_worker_check():
    assert xdist_worker(types.SimpleNamespace()) is None
    assert xdist_worker(types.SimpleNamespace(workerinput={"workerid": "gw3"})) == "gw3"


def test_a_worker_keeps_the_cpu(tmp_path):
    cpu = toy.options(tmp_path)
    assert cpu.for_worker("gw1", requested_any_cuda=False) is cpu
    assert cpu.physical(Device.parse("cpu")) == Device.parse("cpu")
    placed = toy.options(tmp_path, device=Device.parse("cuda"), gpu=Device.parse("cuda:1"), worker="gw1")
    assert placed.physical(Device.parse("cuda:0")) == Device.parse("cuda:1") and placed.physical(Device.parse("cpu")).type == "cpu"


def test_from_config_parses_and_resolves(pytester):
    pytester.makeini("[pytest]\nawml_samples = 5\nawml_precision = fp32,fp16,fp32\n")
    config = pytester.parseconfig("--awml-spec=a", "--awml-spec=b", "--awml-seed=7", "--awml-backends= pytorch, onnxruntime ",
                                  "--awml-artifacts=out", "--awml-tolerance=y=1e-3", "--awml-rounds=3", "--awml-warmup=0")
    options = AwmlOptions.from_config(config)
    assert options.specs == ("a", "b") and options.seed == 7 and options.samples == 5
    assert options.backends == ("pytorch", "onnxruntime") and options.precisions == (Precision.FP32, Precision.FP16)
    assert options.artifacts == pytester.path / "out" and options.report == pytester.path / "out" / "awml-report.json"
    assert options.rounds == 3 and options.warmup == 0 and options.tolerances.as_dict() == {"y": [1e-3, 0.0]}
    assert options.worker is None and options.gpu is None and options.hypothesis_profile in ("ci", "dev")


@pytest.mark.parametrize("args, words", [
    (["--awml-samples=0"], "--awml-samples must be >= 1, got 0"),
    (["--awml-seed=x"], "--awml-seed 'x' is not an integer"),
    (["--awml-precision=int4"], "precision 'int4' is unknown"),
    (["--awml-device=gpu"], "use cpu, cuda or cuda:N"),
    (["--awml-update-golden"], "--awml-update-golden needs --awml-golden=DIR"),
    (["--awml-checkpoint=missing.pt"], "missing.pt does not exist"),
    (["--awml-data-option=novalue"], "'novalue' is not KEY=VALUE"),
    (["--awml-hypothesis-profile=fast"], "use ci or dev"),
])
def test_bad_values_say_what_to_give(pytester, args, words):
    with pytest.raises(AwmlError, match=words.replace("(", r"\(").replace(")", r"\)")):
        AwmlOptions.from_config(pytester.parseconfig("--awml-spec=a", *args))
