"""The plugin end to end on centerpoint-tiny, through pytester (each run is a subprocess)."""

from __future__ import annotations

import re
import textwrap

import onnx
import pytest

from pytest_awml.timing import REPORT_DECIMALS

EXPECTED = [
    "test_export[centerpoint-tiny/pts_voxel_encoder/onnx]",
    "test_export[centerpoint-tiny/pts_backbone_neck_head/onnx]",
    "test_parity[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32]",
    "test_parity[centerpoint-tiny/pts_backbone_neck_head/onnxruntime-cpu-fp32]",
    "test_latency[centerpoint-tiny/pts_voxel_encoder/pytorch-cpu-fp32]",
    "test_latency[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32]",
    "test_latency[centerpoint-tiny/pts_backbone_neck_head/pytorch-cpu-fp32]",
    "test_latency[centerpoint-tiny/pts_backbone_neck_head/onnxruntime-cpu-fp32]",
    "test_shapes[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32]",
    "test_pipeline_parity[centerpoint-tiny/onnxruntime-cpu-fp32]",
    "test_pipeline_latency[centerpoint-tiny/pytorch-cpu-fp32]",
    "test_pipeline_latency[centerpoint-tiny/onnxruntime-cpu-fp32]",
    "test_metric[centerpoint-tiny/onnxruntime-cpu-fp32]",
]
HEADS = ["heatmap", "reg", "height", "dim", "rot", "vel"]


def test_tiny_spec_end_to_end_then_reuse(run_awml):
    first = run_awml("--awml-spec", "centerpoint-tiny", "-v", "-rs")
    first.result.assert_outcomes(passed=13, skipped=2)  # test_drift needs --awml-golden
    assert "no golden folder: pass --awml-golden=DIR" in first.text
    for test_id in EXPECTED:
        assert f"{test_id} PASSED" in first.text
    assert "no checkpoint given: bundled trained weights weights/centerpoint-tiny.pt" in first.text
    report = first.report
    assert set(report) >= {"run", "artifacts", "parity", "latency"}
    assert [(s["test_id"].split("[")[0], s["reason"][:17]) for s in report["skipped"]] == [("awml::test_drift", "no golden folder:")] * 2
    graphs = [a for a in report["artifacts"] if a["format"] == "onnx"]
    assert [a["reused"] for a in graphs] == [False, False]
    inferences = lambda run: {(a["component"], a["format"], a["details"]["input"]): a for a in run.report["artifacts"]  # noqa: E731
                              if a["format"] in ("reference-outputs", "backend-outputs")}
    stored = inferences(first)
    samples = report["run"]["samples"]
    for fmt in ("reference-outputs", "backend-outputs"):  # one file per input: the samples', the pipeline's, the shapes' corners
        assert {c for c, f, _ in stored if f == fmt} == {"pts_voxel_encoder", "pts_backbone_neck_head"}
        assert sum(f == fmt and c == "pts_voxel_encoder" and "test_shapes" not in a["test_id"] for (c, f, _), a in stored.items()) == samples
    assert not any(a["reused"] for a in stored.values())
    assert {a["details"]["target"] for (_, f, _), a in stored.items() if f == "backend-outputs"} == {"onnxruntime-cpu-fp32"}
    parity = {(r["component"], r["output"]): r for r in report["parity"] if r["component"] != "pipeline"}
    assert set(parity) == {("pts_voxel_encoder", "pillar_features"), *(("pts_backbone_neck_head", h) for h in HEADS)}
    for record in parity.values():
        assert record["passed"] and record["backend"] == "onnxruntime" and record["device"] == "cpu"
        assert record["precision"] == "fp32" and record["test_id"].endswith("onnxruntime-cpu-fp32]")
        assert 0 < record["max_abs"] <= record["atol"] + record["rtol"] * record["ref_max_abs"]
        assert record["min_atol_to_pass"] <= record["atol"] and record["p99_abs"] <= record["max_abs"]
    assert {r["target"] for r in report["latency"]} == {"pytorch-cpu-fp32", "onnxruntime-cpu-fp32"}
    assert all(r["passed"] for r in report["parity"] if r["component"] == "pipeline")
    assert all(0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in report["latency"])
    p50 = {(r["component"], r["target"]): r["p50_ms"] for r in report["latency"]}
    for r in (r for r in report["latency"] if r["component"] == "pipeline"):  # overhead over the networks, same run
        networks = p50[("pts_voxel_encoder", r["target"])] + p50[("pts_backbone_neck_head", r["target"])]
        unit = 10 ** -REPORT_DECIMALS  # every figure in the report is rounded to this
        assert r["components_p50_ms"] == pytest.approx(networks, abs=1.5 * unit)
        assert r["ratio_to_components"] == pytest.approx(r["p50_ms"] / networks, rel=1e-4, abs=unit)
    assert report["run"]["weights"] == "bundled" and report["run"]["versions"]["torch"]
    assert report["run"]["weights_by_spec"]["centerpoint-tiny"].startswith("no checkpoint given: bundled trained weights")

    # the files: checker-clean, names, order and dynamic axes as AWML ships them
    paths = {a["component"]: a["path"] for a in graphs}
    encoder = onnx.load(paths["pts_voxel_encoder"])
    onnx.checker.check_model(encoder, full_check=True)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [(v.name, dims(v)) for v in encoder.graph.input] == [("input_features", ["num_voxels", 32, 11])]
    assert [(v.name, dims(v)) for v in encoder.graph.output] == [("pillar_features", ["num_voxels", 1, 32])]
    head = onnx.load(paths["pts_backbone_neck_head"])
    assert [v.name for v in head.graph.output] == HEADS
    assert dims(head.graph.input[0]) == [1, 32, 128, 128] and dims(head.graph.output[0]) == [1, 5, 64, 64]
    meta = {p.key: p.value for p in head.metadata_props}
    assert head.producer_name == "pytest-awml" and meta["spec"] == "centerpoint-tiny"
    assert {"spec_hash", "weights_sha256", "torch_version"} <= set(meta)

    # terminal summary
    assert "pts_backbone_neck_head    onnxruntime-cpu-fp32     heatmap  " in first.text
    assert "JSON report:" in first.text

    second = run_awml("--awml-spec", "centerpoint-tiny")
    second.result.assert_outcomes(passed=13, skipped=2)
    again = [a for a in second.report["artifacts"] if a["format"] == "onnx"]
    assert [a["reused"] for a in again] == [True, True]
    assert [a["sha256"] for a in again] == [a["sha256"] for a in graphs]
    # no output is computed again either: nothing that decides them changed, so the second run reads every
    # stored inference back (the reference's and ONNX Runtime's) and reports it reused
    restored = inferences(second)
    assert {k: (a["reused"], a["sha256"]) for k, a in restored.items()} == {k: (True, a["sha256"]) for k, a in stored.items()}
    assert re.search(r"3 inputs \(3 for test_\w+\): 3 reused", second.text)
    # the ledger: every input ran once per target; the second run computed the shape fuzzing's new draws, and one
    # stored input per component and target again, as a check that the store still gives what the code computes
    for ledger in (report["inferences"], second.report["inferences"]):
        keys = [(i["component"], i["target"], i["input"]) for i in ledger]
        assert len(keys) == len(set(keys)) and all(i["seconds"] > 0 for i in ledger)
    assert {(i["component"], i["input"]) for i in report["inferences"] if "test_shapes" not in i["test_id"]} <= {(c, i) for c, _, i in stored}
    assert not any(i.get("checked") for i in report["inferences"])  # nothing was replayed: nothing to check
    checks = [i for i in second.report["inferences"] if "test_shapes" not in i["test_id"]]
    assert all(i["checked"] == "same" and i["store"] for i in checks)
    assert {(i["component"], i["target"]) for i in checks} == {(c, t) for c in ("pts_voxel_encoder", "pts_backbone_neck_head")
                                                              for t in ("pytorch-cpu-fp32", "onnxruntime-cpu-fp32")}

    # --awml-rerun-backends: ONNX Runtime runs every input again and compares it with the stored outputs (the same);
    # the reference is still read (one input per component checked)
    third = run_awml("--awml-spec", "centerpoint-tiny", "--awml-rerun-backends", "-k", "parity")
    assert third.result.ret == 0
    reran = {(i["component"], i["input"]) for i in third.report["inferences"] if i["target"] == "onnxruntime-cpu-fp32"}
    assert reran == {(c, i) for (c, f, i), a in stored.items() if f == "backend-outputs" and "test_shapes" not in a["test_id"]}
    assert all(i["checked"] == "same" for i in third.report["inferences"])
    assert sorted(i["component"] for i in third.report["inferences"] if i["target"] == "pytorch-cpu-fp32") == [
        "pts_backbone_neck_head", "pts_voxel_encoder"]
    assert all(a["reused"] for a in third.report["artifacts"] if a["format"] == "backend-outputs")
    errors = lambda run: {(r["test_id"], r["output"]): r["max_abs"] for r in run.report["parity"]}  # noqa: E731
    assert errors(third).keys() == errors(first).keys()
    assert list(errors(third).values()) == pytest.approx(list(errors(first).values()), rel=1e-3, abs=1e-9)


SHIFTED_BACKEND = """
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend
from pytest_awml.runners.base import Runner


class ShiftedRunner(Runner):
    def __init__(self, inner):
        super().__init__(inner.target, inner.output_names)
        self.inner = inner

    def prepare(self, inputs):
        return self.inner.prepare(inputs)

    def execute(self, prepared):
        return self.inner.execute(prepared)

    def fetch(self, raw):
        outputs = self.inner.fetch(raw)
        if "heatmap" in outputs:
            outputs["heatmap"] = outputs["heatmap"] + 0.01
        return outputs


class ShiftedBackend(OnnxRuntimeBackend):
    name = "shifted"

    def create_runner(self, source, target):
        return ShiftedRunner(super().create_runner(source, target))


def pytest_awml_add_backends(registry):
    registry.register(ShiftedBackend())
"""


def test_a_wrong_backend_fails_parity_naming_the_output(run_awml, pytester):
    pytester.makeconftest(SHIFTED_BACKEND)
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-backends", "shifted", "-k", "test_parity", "-v")
    run.result.assert_outcomes(passed=1, failed=1)
    assert "test_parity[centerpoint-tiny/pts_voxel_encoder/shifted-cpu-fp32] PASSED" in run.text
    assert "test_parity[centerpoint-tiny/pts_backbone_neck_head/shifted-cpu-fp32] FAILED" in run.text
    assert "ToleranceExceeded: shifted-cpu-fp32 differs from pytorch-cpu-fp32 on 1 of 6 output(s)" in run.text
    assert "heatmap: FAILED max_abs=0.01" in run.text
    assert "Traceback" not in run.text
    heat = next(r for r in run.report["parity"] if r["output"] == "heatmap")
    assert not heat["passed"] and heat["max_abs"] == pytest.approx(0.01, abs=heat["atol"])
    assert heat["min_atol_to_pass"] > heat["atol"]


def test_a_bad_spec_field_stops_collection_naming_it(run_awml, pytester):
    pytester.makepyfile(bad_spec=textwrap.dedent("""
        import dataclasses
        from model_specs.centerpoint.spec import TINY_SPEC
        from pytest_awml.spec import Tolerance

        comp = dataclasses.replace(TINY_SPEC.components[1], tolerances={"fp32": {"hetmap": Tolerance(1e-4)}}, fed_by=None)
        SPEC = dataclasses.replace(TINY_SPEC, name="bad", components=(comp,))
    """))
    run = run_awml("--awml-spec", "bad_spec.py")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "spec 'bad', field components['pts_backbone_neck_head'].tolerances['fp32']['hetmap']: names no output" in run.text
    assert "Fix: outputs are heatmap, reg, height, dim, rot, vel" in run.text
    assert "Traceback" not in run.text


def test_an_unknown_spec_name_lists_the_known_ones(run_awml):
    run = run_awml("--awml-spec", "centrepoint")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no spec of that name is registered" in run.text and "centerpoint-tiny" in run.text


def test_bad_options_are_usage_errors(run_awml):
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-device", "gpu")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR and "use cpu, cuda or cuda:N" in run.text
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-backends", "tensorflow")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR and "unknown backend 'tensorflow'" in run.text


def test_unavailable_targets_are_skipped_visibly(run_awml):
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-precision", "fp32,fp16", "-rs", "-k", "voxel_encoder")
    run.result.assert_outcomes(passed=5, skipped=7)
    assert "fp16 on the CPU is not a deployment target" in run.text
    assert "ONNX Runtime's CPU provider runs the fp32 graph" in run.text


def test_without_awml_spec_the_plugin_is_inert(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "awml:" not in result.stdout.str()


def test_pipeline_tests_run_on_a_bin_file(run_awml, pytester):
    from model_specs.centerpoint.spec import TINY_SPEC

    scan = pytester.path / "scan.bin"  # KITTI-style: x, y, z, intensity
    scan.write_bytes(TINY_SPEC.make_samples(1, 11)[0].current.points.tobytes())
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-data", str(scan), "--awml-data-option=point_features=4",
                   "-v", "-k", "pipeline")
    run.result.assert_outcomes(passed=3)
    assert "test_pipeline_parity[centerpoint-tiny/onnxruntime-cpu-fp32] PASSED" in run.text
    assert f"real samples from {scan}" in run.text
    stages = next(r for r in run.report["latency"] if r["target"] == "onnxruntime-cpu-fp32")["stages"]
    assert list(stages) == ["preprocess", "voxel_encoder", "middle_encoder", "backbone_head", "postprocess"]
    assert all(s["p50_ms"] > 0 for s in stages.values())
    checks = {r["output"]: r for r in run.report["parity"] if r["component"] == "pipeline"}
    assert checks["boxes.threshold_flips"]["max_abs"] == 0 and checks["boxes.centre_m"]["max_abs"] < 0.05


def test_a_shifted_heatmap_fails_pipeline_parity_with_flips(run_awml, pytester):
    pytester.makeconftest(SHIFTED_BACKEND.replace("+ 0.01", "+ 0.2"))
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-backends", "shifted", "-k", "pipeline_parity", "-v")
    run.result.assert_outcomes(failed=1)
    assert "the shifted-cpu-fp32 pipeline differs from pytorch-cpu-fp32" in run.text
    assert "boxes.threshold_flips: FAILED" in run.text
    flips = next(r for r in run.report["parity"] if r["output"] == "boxes.threshold_flips")
    assert flips["max_abs"] >= 1 and not flips["passed"]


def test_tensorrt_shows_as_skipped_with_its_reason_by_default(run_awml):
    from pytest_awml.runners.tensorrt import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason is None:
        pytest.skip("tensorrt imports here: its tests run instead of skipping")
    run = run_awml("--awml-spec", "centerpoint-tiny", "-rs", "-k", "tensorrt and not rtx", default_backends=True)
    run.result.assert_outcomes(skipped=10)  # export x2, parity x2, shapes, latency x2, pipeline x2, metric
    assert "tensorrt not importable: ModuleNotFoundError: No module named 'tensorrt'" in run.text
    assert "test_export[centerpoint-tiny/pts_voxel_encoder/tensorrt-fp32]" in run.text or "SKIPPED [2]" in run.text


def test_tensorrt_rtx_engines_are_built_on_the_cpu_by_default(run_awml):
    """TensorRT-RTX builds without a GPU: the default run builds real engines (fp32 and, from the fp16
    graph, fp16) and reports what the builder made of them; running them needs a supported GPU."""
    from exporters.tensorrt_build import TENSORRT_RTX

    rtx_unavailable = TENSORRT_RTX.unavailable

    if rtx_unavailable():
        pytest.skip(rtx_unavailable())
    run = run_awml("--awml-spec", "centerpoint-tiny", "--awml-precision=fp32,fp16", "-rs", "-v", "-k", "rtx", default_backends=True)
    run.result.assert_outcomes(passed=4, skipped=16)  # export x4; parity x4, shapes x2, latency x4, pipeline x4, metric x2 skip
    for component in ("pts_voxel_encoder", "pts_backbone_neck_head"):
        for precision in ("fp32", "fp16"):
            assert f"test_export[centerpoint-tiny/{component}/tensorrt-rtx-{precision}] PASSED" in run.text
    assert "TensorRT-RTX engines run on CUDA devices only: pass --awml-device cuda" in run.text
    engines = {(a["component"], a["format"]): a for a in run.report["artifacts"] if a["format"].startswith("tensorrt-rtx")}
    assert len(engines) == 4
    for record in engines.values():
        details = record["details"]
        assert details["engine_bytes"] == record["size_bytes"] > 0 and details["layers"] > 10 and details["coverage"]["rejected"] == []
        assert details["builder"].startswith("tensorrt-rtx ") and details["build_seconds"] > 0
    assert engines[("pts_voxel_encoder", "tensorrt-rtx-fp32")]["details"]["profile"]["input_features"][2] == [12000, 32, 11]
    assert engines[("pts_backbone_neck_head", "tensorrt-rtx-fp16")]["details"]["graph"] == "onnx-fp16"
    assert engines[("pts_backbone_neck_head", "tensorrt-rtx-fp16")]["details"]["coverage"]["onnx_ops"]["Cast"] > 0
    assert {a["format"] for a in run.report["artifacts"]} >= {"onnx", "onnx-fp16"}  # the fp16 graph is reported as built


def test_shape_fuzzing_covers_corners_and_refuses_out_of_range(run_awml):
    run = run_awml("--awml-spec=centerpoint-tiny", "--awml-hypothesis-profile=ci", "-k", "test_shapes", "-v")
    run.result.assert_outcomes(passed=1)
    assert "test_shapes[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32] PASSED" in run.text
    record = run.report["shapes"][0]
    sizes = [t["sizes"]["num_voxels"] for t in record["tried"]]
    assert sizes[:3] == [100, 3000, 12000] and len(sizes) > 3 and all(100 <= s <= 12000 for s in sizes)
    assert all(t["passed"] for t in record["tried"])
    assert len(record["refused"]) == 4
    assert "'input_features' axis 0 (num_voxels) is 0, outside the declared range [100, 12000]" in record["refused"][0]
    assert "is 12001, outside" in record["refused"][2]


def test_the_bundle_ships_the_graphs_it_tested(run_awml, pytester):
    """--awml-autoware: the shipped graphs (the node's fixed encoder shape, the y-axis head) get every gate under
    their own names, the bundle's own pipeline is compared end to end, and the bundle holds exactly those files."""
    run = run_awml("--awml-spec=centerpoint-tiny", "--awml-autoware=bundle", "-v", "-k", "autoware or bundle")
    outcomes = run.result.parseoutcomes()
    assert run.result.ret == 0 and outcomes.get("failed", 0) == 0, run.text[-3000:]
    for test_id in ("test_export[centerpoint-tiny/autoware.pts_voxel_encoder/onnx]",
                    "test_parity[centerpoint-tiny/autoware.pts_backbone_neck_head/onnxruntime-cpu-fp32]",
                    "test_shapes[centerpoint-tiny/autoware.pts_voxel_encoder/onnxruntime-cpu-fp32]",
                    "test_latency[centerpoint-tiny/autoware.pts_voxel_encoder/onnxruntime-cpu-fp32]",
                    "test_pipeline_parity[centerpoint-tiny/bundle/onnxruntime-cpu-fp32]",
                    "test_pipeline_latency[centerpoint-tiny/bundle/pytorch-cpu-fp32]", "test_bundle[centerpoint-tiny]"):
        assert f"{test_id} PASSED" in run.text, test_id
    report = run.report
    tested = {a["component"]: a["sha256"] for a in report["artifacts"] if a["format"] == "onnx"}
    shipped = {a["tested_as"]: a["sha256"] for a in report["artifacts"] if a["format"] == "autoware-bundle" and a["tested_as"]}
    assert shipped == {name: tested[name] for name in ("autoware.pts_voxel_encoder", "autoware.pts_backbone_neck_head")}
    latency = next(r for r in report["latency"] if r["test_id"].endswith("autoware.pts_voxel_encoder/onnxruntime-cpu-fp32]"))
    assert latency["component"] == "autoware.pts_voxel_encoder"
    assert {r["component"] for r in report["latency"] if "/bundle/" in r["test_id"]} == {"bundle.pipeline"}
    from model_specs.centerpoint.autoware import check_bundle

    assert check_bundle(pytester.path / "bundle" / "centerpoint-tiny") == []


def test_shape_fuzzing_keeps_what_a_later_run_draws_again(run_awml):
    """The corner sizes, and under the derandomized ci profile every draw, are the same in every run: they are
    stored and a later run reads them back; the dev profile's draws are new each run and are not stored."""
    first, again, dev = (run_awml("--awml-spec=centerpoint-tiny", "-k", "test_shapes", f"--awml-hypothesis-profile={profile}")
                         for profile in ("ci", "ci", "dev"))
    for run in (first, again, dev):
        run.result.assert_outcomes(passed=1)
    kept = lambda run: [a for a in run.report["artifacts"] if a["format"] == "backend-outputs"]  # noqa: E731
    assert len(kept(first)) == first.report["shapes"][0]["examples"] and not any(a["reused"] for a in kept(first))
    assert all(a["reused"] for a in kept(again))  # and one stored draw per target recomputed, as the run's check
    assert sorted((i["target"], i["checked"]) for i in again.report["inferences"]) == [("onnxruntime-cpu-fp32", "same"),
                                                                                       ("pytorch-cpu-fp32", "same")]
    assert 0 < len(kept(dev)) < len(kept(first)) and all(a["reused"] for a in kept(dev))  # the corners only
    assert dev.report["inferences"]  # its draws


# what this branch added to the report (fields may be added, never renamed, dropped or moved)
ADDED = {"top": ["skipped", "int8_sensitivity", "sequence"], "run": ["facts", "deploy_config", "interrupted", "selection"], "artifacts": ["tested_as", "role"],
         "parity": ["reference", "deploy_tolerance", "within_deploy_tolerance", "tolerance_gate", "first_divergence"],
         "inferences": ["checked", "store"], "latency": ["rounds_ms", "regression"], "metrics": ["not_judged"],
         "skipped": ["test_id", "reason"]}


def test_the_report_keeps_main_s_keys_in_main_s_order_and_only_adds(run_awml, pytester):
    """Every record of a run that makes most kinds (golden written, so drift's golden records too) has the keys,
    in order, of one of the shapes main wrote before the records were typed (tests/data/report_keys.json)."""
    import json
    from pathlib import Path

    main = json.loads((Path(__file__).parent / "data" / "report_keys.json").read_text())
    run = run_awml("--awml-spec", "centerpoint-tiny", f"--awml-golden={pytester.path / 'golden'}", "--awml-update-golden")
    assert run.result.ret == 0, run.text
    report = run.report
    kept = lambda keys, kind: [k for k in keys if k not in ADDED.get(kind, [])]  # noqa: E731
    assert kept(list(report), "top") == main["top"] and kept(list(report["run"]), "run") == main["run"]
    seen = {}
    for kind, records in report.items():
        if kind in ("run", "skipped"):
            continue
        for record in records:
            keys = kept(list(record), kind)
            assert keys in main[kind], f"a {kind} record's keys changed: {keys}"
            seen.setdefault(kind, []).append(keys)
            if kind == "artifacts":
                assert record["role"] in {"export", "inference", "weights"}
                assert (record["role"] == "inference") == (record["format"] in ("reference-outputs", "backend-outputs"))
    for kind in ("artifacts", "parity", "latency", "shapes", "golden", "metrics", "inferences"):  # drift and data need other runs
        assert all(shape in seen[kind] for shape in main[kind]), kind
    assert report["run"]["interrupted"] is False and report["run"]["selection"]["deselected"] == 0

    # --collect-only runs no test: the report stays the last run's, and the summary says none was written
    before = (pytester.path / ".awml" / "artifacts" / "awml-report.json").read_bytes()
    listed = run_awml("--awml-spec", "centerpoint-tiny", "--collect-only", "-q")
    assert listed.result.ret == 0 and "JSON report: none written (--collect-only" in listed.text
    assert (pytester.path / ".awml" / "artifacts" / "awml-report.json").read_bytes() == before
    # a -k run reports fewer tests: it writes its own report, and keeps and names the fuller one
    narrower = run_awml("--awml-spec", "centerpoint-tiny", "-k", "test_export", "-rs")
    assert "WARNING: this run's report replaced" in narrower.text and "awml-report.previous.json" in narrower.text
    assert (pytester.path / ".awml" / "artifacts" / "awml-report.previous.json").read_bytes() == before
    assert narrower.report["run"]["selection"]["deselected"] > 0 and narrower.report["skipped"] == []
