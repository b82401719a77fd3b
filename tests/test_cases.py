"""How specs become test ids (pytest_awml.cases), in process: ids per kind, skips, kinds left out."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_awml.backends import builtin as builtin_backends
from pytest_awml.builders import builtin as builtin_builders
from pytest_awml.cases import KINDS, Case, Plan, parameters
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import AwmlError
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend
from pytest_awml.spec import Tolerance
import toy


def ids(plan: Plan, kind: str) -> list[str]:
    return [case.id for case in plan.cases(kind)]


def test_ids_of_every_kind(tmp_path):
    plan = toy.plan(tmp_path)
    assert ids(plan, "export") == ["toy/enc/onnx", "toy/enc/tensorrt-fp32", "toy/head/onnx", "toy/head/tensorrt-fp32"]
    assert ids(plan, "parity") == ["toy/enc/onnxruntime-cpu-fp32", "toy/enc/tensorrt-cpu-fp32",
                                   "toy/head/onnxruntime-cpu-fp32", "toy/head/tensorrt-cpu-fp32"]
    assert ids(plan, "shapes") == ["toy/enc/onnxruntime-cpu-fp32", "toy/enc/tensorrt-cpu-fp32"]  # head has no dynamic dim
    assert ids(plan, "latency") == [f"toy/{c}/{b}-cpu-fp32" for c in ("enc", "head") for b in ("pytorch", "onnxruntime", "tensorrt")]
    assert ids(plan, "pipeline_parity") == ["toy/onnxruntime-cpu-fp32", "toy/tensorrt-cpu-fp32"]
    assert ids(plan, "pipeline_latency") == ["toy/pytorch-cpu-fp32", "toy/onnxruntime-cpu-fp32", "toy/tensorrt-cpu-fp32"]
    assert ids(plan, "drift") == ["toy/enc", "toy/head"]
    assert ids(plan, "bundle") == []
    assert set(KINDS) == {"export", "parity", "shapes", "latency", "pipeline_parity", "pipeline_latency", "metric", "drift", "bundle",
                          "int8_sensitivity", "sequence_parity", "sequence_latency", "sequence_pipeline_parity", "sequence_metric"}
    assert ids(plan, "sequence_parity") == ids(plan, "sequence_latency") == []  # the toy spec declares no sequence
    assert ids(plan, "sequence_pipeline_parity") == ids(plan, "sequence_metric") == []
    assert ids(plan, "int8_sensitivity") == []  # only with --awml-int8-sensitivity
    assert ids(plan, "metric") == []  # the toy spec declares no metric


def test_sequence_ids_per_target_and_their_skips(tmp_path):
    import seqtoy

    plan = dataclasses.replace(toy.plan(tmp_path, precisions=(Precision.FP32, Precision.FP16)), specs=(seqtoy.spec(),))
    assert ids(plan, "sequence_latency") == [f"seqtoy/{b}-cpu-{p}" for b in ("pytorch", "onnxruntime", "tensorrt") for p in ("fp32", "fp16")]
    assert ids(plan, "sequence_parity") == ids(plan, "sequence_latency")[1:]  # not the reference against itself
    skips = {c.id: c.skip for c in plan.cases("sequence_parity")}
    assert skips["seqtoy/onnxruntime-cpu-fp32"] == "" and "fp16 needs a GPU backend" in skips["seqtoy/onnxruntime-cpu-fp16"]
    no_bound = dataclasses.replace(seqtoy.spec(), sequence=dataclasses.replace(seqtoy.spec().sequence, drift={"fp16": {"*": Tolerance(1.0)}}))
    skips = {c.id: c.skip for c in dataclasses.replace(plan, specs=(no_bound,)).cases("sequence_parity")}
    assert skips["seqtoy/onnxruntime-cpu-fp32"] == "the spec gives no fp32 sequence drift bound"
    assert ids(plan, "sequence_pipeline_parity") == ids(plan, "sequence_metric") == []  # seqtoy.spec() declares neither
    judged = dataclasses.replace(plan, specs=(seqtoy.spec(judged=True),))
    assert ids(judged, "sequence_pipeline_parity") == ids(judged, "sequence_metric") == ids(judged, "sequence_parity")
    skips = {c.id: c.skip for c in judged.cases("sequence_pipeline_parity")}
    assert skips == {c.id: c.skip for c in judged.cases("sequence_parity")}  # skipped where the sequence's parity is
    skips = {c.id: c.skip for c in judged.cases("sequence_metric")}
    assert skips["seqtoy/onnxruntime-cpu-fp32"] == "" and "fp16 needs a GPU backend" in skips["seqtoy/onnxruntime-cpu-fp16"]
    assert skips["seqtoy/tensorrt-cpu-fp32"] != ""  # the backend's own reason


def test_int8_targets_formats_and_sensitivity_ids(tmp_path):
    plan = toy.plan(tmp_path, precisions=(Precision.INT8,), backends=("pytorch", "onnxruntime", "tensorrt-rtx"), int8_sensitivity=True)
    assert ids(plan, "export") == ["toy/enc/onnx-int8", "toy/enc/tensorrt-rtx-int8", "toy/head/onnx-int8", "toy/head/tensorrt-rtx-int8"]
    assert ids(plan, "int8_sensitivity") == ["toy/enc/onnxruntime-cpu-int8", "toy/head/onnxruntime-cpu-int8"]
    skips = {c.id: c.skip for c in plan.cases("parity")}
    assert "int8 is a quantized graph's precision" in skips["toy/enc/pytorch-cpu-int8"]
    assert skips["toy/enc/onnxruntime-cpu-int8"] == "the spec gives no int8 tolerances for enc"


def test_case_ids_by_fields():
    spec, comp = toy.SPEC, toy.SPEC.components[0]
    target = Target("onnxruntime", Device.parse("cuda:1"), Precision.TF32)
    assert Case(spec).id == "toy"
    assert Case(spec, comp).id == "toy/enc"
    assert Case(spec, comp, format="onnx").id == "toy/enc/onnx"
    assert Case(spec, comp, target).id == "toy/enc/onnxruntime-cuda1-tf32"
    assert Case(spec, target=target).id == "toy/onnxruntime-cuda1-tf32"


def test_skips_carry_their_reason(tmp_path):
    plan = toy.plan(tmp_path)
    skips = {case.id: case.skip for case in plan.cases("parity")}
    assert skips["toy/enc/onnxruntime-cpu-fp32"] == "" and skips["toy/enc/tensorrt-cpu-fp32"]
    export = {case.id: case.skip for case in plan.cases("export")}
    assert export["toy/enc/onnx"] == "" and export["toy/enc/tensorrt-fp32"] == skips["toy/enc/tensorrt-cpu-fp32"]
    assert all(c.skip.startswith("no golden folder: pass --awml-golden=DIR") for c in plan.cases("drift"))
    assert all(not c.skip for c in toy.plan(tmp_path, golden=tmp_path / "g").cases("drift"))


def test_an_engine_that_builds_here_is_exported_even_where_it_cannot_run(tmp_path):
    """TensorRT-RTX builds on the CPU: its export runs while its parity, on the same CPU, skips."""
    from exporters.tensorrt_build import TENSORRT_RTX

    rtx_unavailable = TENSORRT_RTX.unavailable

    plan = toy.plan(tmp_path, backends=("tensorrt-rtx",), precisions=(Precision.FP32, Precision.FP16))
    assert ids(plan, "export") == ["toy/enc/tensorrt-rtx-fp32", "toy/enc/tensorrt-rtx-fp16",
                                   "toy/head/tensorrt-rtx-fp32", "toy/head/tensorrt-rtx-fp16"]
    exports = {case.skip for case in plan.cases("export")}
    assert exports == ({""} if rtx_unavailable() is None else {rtx_unavailable()})
    assert all("CUDA devices only" in c.skip or c.skip == rtx_unavailable() for c in plan.cases("parity"))


def test_a_precision_without_tolerances_is_skipped_by_name(tmp_path):
    class AnyPrecision(OnnxRuntimeBackend):
        name = "any"

        def unavailable_reason(self, device, precision):
            return None

    backends = builtin_backends()
    backends.register(AnyPrecision())
    plan = toy.plan(tmp_path, registry=backends, backends=("any",), precisions=(Precision.FP32, Precision.FP16))
    skips = {case.id: case.skip for case in plan.cases("parity")}
    assert skips == {"toy/enc/any-cpu-fp32": "", "toy/enc/any-cpu-fp16": "the spec gives no fp16 tolerances for enc",
                     "toy/head/any-cpu-fp32": "", "toy/head/any-cpu-fp16": "the spec gives no fp16 tolerances for head"}
    assert ids(plan, "export") == ["toy/enc/onnx", "toy/head/onnx"]  # one file serves every precision of the backend


def test_the_reference_is_never_compared_with_itself(tmp_path):
    plan = toy.plan(tmp_path, backends=("pytorch",))
    assert ids(plan, "parity") == [] and ids(plan, "pipeline_parity") == [] and ids(plan, "export") == []
    assert ids(plan, "latency") == ["toy/enc/pytorch-cpu-fp32", "toy/head/pytorch-cpu-fp32"]


def test_bundle_cases_need_the_option_and_a_bundle_writer(tmp_path):
    with_bundle = dataclasses.replace(toy.SPEC, bundle=lambda model, folder: [])
    assert ids(toy.plan(tmp_path, specs=(with_bundle,)), "bundle") == []
    assert ids(toy.plan(tmp_path, specs=(with_bundle, dataclasses.replace(toy.SPEC, name="plain")), autoware=tmp_path), "bundle") == ["toy"]


def test_default_backends_list_tensorrt_even_where_it_cannot_run(tmp_path):
    plan = toy.plan(tmp_path, backends=None)
    names = [t.backend for t, _ in plan.targets]
    assert names[:2] == ["pytorch", "onnxruntime"] and "tensorrt" in names
    assert "onnxruntime-cuda" not in names  # not on a CPU device, and not listed when unavailable


def test_unknown_backends_and_formats_stop_the_plan(tmp_path):
    with pytest.raises(AwmlError, match="unknown backend 'tensorflow': registered are pytorch, onnxruntime"):
        toy.plan(tmp_path, backends=("tensorflow",))

    class Exotic(OnnxRuntimeBackend):
        name = "exotic"

        def artifact_format(self, precision):
            return "exotic-file"

    backends = builtin_backends()
    backends.register(Exotic())
    with pytest.raises(AwmlError, match="unknown artifact format 'exotic-file': registered are onnx, tensorrt-fp32"):
        Plan.build(toy.options(tmp_path, backends=("exotic",)), [toy.SPEC], backends, builtin_builders())


def test_parameters_carry_ids_and_skip_marks(tmp_path):
    params = parameters(toy.plan(tmp_path), "export")
    assert [p.id for p in params] == ids(toy.plan(tmp_path), "export")
    assert [bool(p.marks) for p in params] == [False, True, False, True]
    assert params[1].marks[0].kwargs["reason"].startswith("tensorrt not importable")


TOY_SPEC_FILE = """
import dataclasses
from toy import SPEC

SPECS = [dataclasses.replace(SPEC, pipeline=None, name="nopipe")]
"""


def test_collection_leaves_out_kinds_without_cases(pytester):
    """In process: the plugin's collection of a spec without pipeline, golden or bundle. A kind without cases is not
    collected at all: deselecting it showed as "N deselected" in a run with no -k (issue 30)."""
    pytester.makepyfile(nopipe=TOY_SPEC_FILE)
    reprec = pytester.inline_run("--collect-only", "-p", "no:cacheprovider", "--awml-spec=nopipe.py",
                                 "--awml-backends=pytorch,onnxruntime")
    collected = [item.nodeid for item in reprec.getcalls("pytest_collection_finish")[0].session.items]
    deselected = [item.nodeid for call in reprec.getcalls("pytest_deselected") for item in call.items]
    assert collected == [
        "awml::test_export[nopipe/enc/onnx]", "awml::test_export[nopipe/head/onnx]",
        "awml::test_parity[nopipe/enc/onnxruntime-cpu-fp32]", "awml::test_parity[nopipe/head/onnxruntime-cpu-fp32]",
        "awml::test_drift[nopipe/enc]", "awml::test_drift[nopipe/head]",
        "awml::test_shapes[nopipe/enc/onnxruntime-cpu-fp32]",
        "awml::test_latency[nopipe/enc/pytorch-cpu-fp32]", "awml::test_latency[nopipe/enc/onnxruntime-cpu-fp32]",
        "awml::test_latency[nopipe/head/pytorch-cpu-fp32]", "awml::test_latency[nopipe/head/onnxruntime-cpu-fp32]",
    ]
    assert deselected == []


def test_tolerance_table_is_read_per_precision():
    assert toy.SPEC.components[0].tolerance(Precision.FP32, "y") == Tolerance(1e-5, 1e-5)
