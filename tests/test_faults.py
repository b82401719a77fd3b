"""Fault injection: every bad input a user can give ends in one AwmlError line that names the input
and the fix, never a traceback, an INTERNALERROR, a hang or a green run that checked nothing.

Each table row is a bad input and what it must give: the error class (or exit code) and a fragment of
the message. Options and files the plugin reads at configure time run through pytest in-process
(usage error, exit 4, before any test); the readers, stores and ``awml-report`` are called directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from model_specs.centerpoint import data
from model_specs.centerpoint.autoware import AutowareSettings
from model_specs.centerpoint.config import TINY
from model_specs.mmconfig import MAX_CONFIG_BYTES, read_config
from pytest_awml import report, run_report
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.builders.onnx import onnx_problem
from pytest_awml.device import REFERENCE, Device, Precision, Target
from pytest_awml.limits import LatencySettings, Tolerance
from pytest_awml.errors import ArtifactError, BackendError, BackendUnavailable, DataError, SpecError
from pytest_awml.golden import GoldenStore
from pytest_awml.locks import held
from pytest_awml.metric import MetricSpec
from pytest_awml.paths import FILE_MODE, write_atomic
from pytest_awml.models import DataWarning
from pytest_awml.records import DataNote, SkippedTest
from pytest_awml.results import Results
from pytest_awml.runners.onnxruntime import OnnxRuntimeRunner
from pytest_awml.runners.pytorch import PyTorchRunner

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
CONFIG_ANSWER_S = 0.5  # a refused config answers in well under a second (issue 29)
USAGE = pytest.ExitCode.USAGE_ERROR
CPU_FP32 = Target("onnxruntime", Device("cpu"), Precision.FP32)


# -- options and files read at configure time: usage errors (exit 4) before any test --------------
def _files(root: Path) -> dict[str, str]:
    """Bad inputs on disk, made once per test; each value is the path an option is given."""
    (root / "a_file").write_text("x")
    (root / "not_json.json").write_text("{ not json")
    (root / "no_stats.json").write_text(json.dumps({"benchmarks": [{"name": "test_latency[x]", "extra_info": {}}]}))
    twice = {"name": "test_latency[x]", "stats": {"median": 0.01}}
    (root / "twice.json").write_text(json.dumps({"benchmarks": [twice, twice]}))
    (root / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "schema_list.json").write_text("[1, 2]")
    (root / "schema_bad.json").write_text(json.dumps({"type": 12}))
    (root / "schema_nowhere.json").write_text(json.dumps({"properties": {"a": {"$ref": "#/definitions/none"}}}))
    (root / "schema_dialect.json").write_text(json.dumps({"$schema": 5}))
    (root / "schema_remote.json").write_text(json.dumps({"properties": {"a": {"$ref": "https://example.invalid/a.json#/x"}}}))
    (root / "scan.bin").write_bytes(np.zeros((10, 4), np.float32).tobytes())
    (root / "dir").mkdir()
    configs = {"syntax.py": "model = dict(\n", "base.py": "_base_ = ['missing.py']\n", "power.py": "x = 9 ** 9 ** 9\n",
               "repeat.py": "x = 'a' * 10 ** 9\n",
               "case.py": "_base_ = ['Default_Runtime.py']\n", "huge.py": "#" * (MAX_CONFIG_BYTES + 1),
               "channels.py": (CONFIGS / "centerpoint_tiny.py").read_text() + "\nmodel['pts_voxel_encoder']['in_channels'] = 'abc'\n"}
    deploy = (CONFIGS / "deploy_centerpoint_tiny.py").read_text()
    configs.update({"deploy_field.py": deploy + "onnx_config['opset'] = 17\n",
                    "deploy_policy.py": deploy + "tensorrt_config['precision_policy'] = 'int4'\n",
                    "deploy_checkpoint.py": deploy + "checkpoint_path = 'work_dirs/best.pth'\n",
                    "deploy_profile.py": deploy + "components['pts_voxel_encoder']['tensorrt_profile']['input_features']['max_shape'] = [6000, 32, 11]\n",
                    "deploy_other.py": (CONFIGS / "deploy_calibration_tiny.py").read_text(),
                    "deploy_training.py": (CONFIGS / "centerpoint_tiny.py").read_text()})
    batch4 = (CONFIGS / "deploy_mobilenetv2_car_batch4.py").read_text()
    configs.update({"deploy_batch5.py": batch4.replace("[4, 3, 224, 224]", "[5, 3, 224, 224]"),
                    "deploy_size.py": batch4.replace("input_shape=[224, 224]", "input_shape=[320, 320]"),
                    "deploy_shape.py": batch4.replace("input_shape=[224, 224]", "input_shape='224'")})
    for name, text in configs.items():
        (root / name).write_text(text)
    if (CONFIGS / "centerpoint_tiny.py").exists():  # its _base_ files resolve beside it
        for base in CONFIGS.glob("*.py"):
            if not (root / base.name).exists():
                (root / base.name).write_text(base.read_text())
    # keyed by the name without its suffix: "{scan}" in a row is the path of scan.bin
    return {name.split(".")[0]: str(root / name) for name in ("a_file", "not_json.json", "no_stats.json", "twice.json", "nested.json", "schema_list.json",
                                                    "schema_bad.json", "schema_remote.json", "schema_nowhere.json", "schema_dialect.json", "scan.bin", "dir", *configs)}


OPTION_FAULTS = [
    # (id, arguments (with {name} from _files), message fragment)
    ("unknown backend", ["--awml-backends", "tensorflow"], "unknown backend 'tensorflow': registered are pytorch"),
    ("unknown precision", ["--awml-precision", "fp64"], "precision 'fp64' is unknown: use one of fp32, fp16, tf32"),
    ("unknown output in a tolerance", ["--awml-tolerance", "hetmap=0.1"], "--awml-tolerance names no output of the specs in this run: hetmap. Outputs are: dim, heatmap"),
    ("tolerance not a number", ["--awml-tolerance", "heatmap=abc"], "use ATOL[,RTOL] or OUTPUT=ATOL[,RTOL]"),
    ("unknown data option", ["--awml-data", "{scan}", "--awml-data-option", "point_feature=4"], "--awml-data-option point_feature: spec 'centerpoint-tiny' reads no such key. Known keys: point_features"),
    ("data option without data", ["--awml-data-option", "point_features=4"], "--awml-data-option has no effect without --awml-data"),
    ("data option not KEY=VALUE", ["--awml-data", "{scan}", "--awml-data-option", "point_features"], "is not KEY=VALUE"),
    ("data that does not exist", ["--awml-data", "{dir}/nothing.bin"], "does not exist"),
    ("autoware folder is a file", ["--awml-autoware", "{a_file}"], "--awml-autoware {a_file} is a file: give a folder"),
    ("artifacts folder is a file", ["--awml-artifacts", "{a_file}"], "--awml-artifacts {a_file} is a file"),
    ("artifacts folder cannot be made", ["--awml-artifacts", "{a_file}/sub"], "--awml-artifacts {a_file}/sub cannot be written"),
    ("report folder cannot be made", ["--awml-report", "{a_file}/sub/report.json"], "--awml-report {a_file}/sub cannot be written"),
    ("report path is a folder", ["--awml-report", "{dir}"], "--awml-report {dir} is a folder"),
    ("schema not JSON", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{not_json}"],
     "--awml-autoware-schema {not_json} is not a readable JSON file"),
    ("schema folder without the schema", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{dir}"],
     "--awml-autoware-schema {dir}/ml_package.schema.json is not a readable JSON file (No such file or directory)"),
    ("schema of the wrong type", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{schema_list}"], "holds a JSON list, not a schema"),
    ("schema that is no schema", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{schema_bad}"],
     "is not a valid JSON Schema (at type: 12 is not valid under any of the given schemas)"),
    ("schema nested too deeply", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{nested}"], "(nested too deeply)"),
    ("schema with a remote $ref", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{schema_remote}"],
     "references https://example.invalid/a.json#/x, outside the file: the schema is checked offline"),
    ("schema $ref to nothing", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{schema_nowhere}"],
     "$ref #/definitions/none points to nothing in the file"),
    ("schema $schema not a URI", ["--awml-autoware", "{dir}/b", "--awml-autoware-schema", "{schema_dialect}"], "$schema is 5, not a metaschema URI"),
    ("golden folder is a file", ["--awml-golden", "{a_file}"], "--awml-golden {a_file} is a file"),
    ("update golden without a folder", ["--awml-update-golden"], "--awml-update-golden needs --awml-golden=DIR"),
    ("lock timeout not a number", ["--awml-lock-timeout", "soon"], "--awml-lock-timeout 'soon' is not a number of seconds"),
    ("negative lock timeout", ["--awml-lock-timeout", "-1"], "--awml-lock-timeout must be a finite number of seconds >= 0"),
    ("baseline not JSON", ["--awml-latency-baseline", "{not_json}"], "is not a readable pytest-benchmark JSON file"),
    ("baseline without stats", ["--awml-latency-baseline", "{no_stats}"], "has no name or no numeric stats.median"),
    ("baseline listing a test twice", ["--awml-latency-baseline", "{twice}"], "the test test_latency[x] is listed twice"),
    ("baseline nested too deeply", ["--awml-latency-baseline", "{nested}"], "is not a readable pytest-benchmark JSON file: nested too deeply"),
    ("baseline that does not exist", ["--awml-latency-baseline", "{dir}/none.json"], "--awml-latency-baseline {dir}/none.json does not exist"),
    ("checkpoint that does not exist", ["--awml-checkpoint", "{dir}/none.pt"], "--awml-checkpoint {dir}/none.pt does not exist"),
    ("samples not a number", ["--awml-samples", "many"], "--awml-samples 'many' is not an integer"),
    ("zero samples", ["--awml-samples", "0"], "--awml-samples must be >= 1"),
    ("unknown hypothesis profile", ["--awml-hypothesis-profile", "fast"], "use ci or dev"),
    ("unknown device", ["--awml-device", "gpu"], "use cpu, cuda or cuda:N"),
    ("config with a syntax error", ["--awml-config", "{syntax}"], "syntax error"),
    ("config with a missing base", ["--awml-config", "{base}"], "which does not exist: the config is broken upstream"),
    ("config whose base matches only by letter case", ["--awml-config", "{case}"], "differs from it only by letter case"),
    ("config raising a huge power", ["--awml-config", "{power}"], "exponent 387420489 is beyond what a config needs"),
    ("config repeating a string", ["--awml-config", "{repeat}"], "would repeat a sequence past the 65536 items"),
    ("config file too large", ["--awml-config", "{huge}"], f"over the {MAX_CONFIG_BYTES} a training config can be"),
    ("config value of the wrong type", ["--awml-config", "{channels}"], "rebuilding the model from it failed: ValueError"),
    ("spec that is not registered", ["--awml-spec", "centrepoint"], "no spec of that name is registered"),
    ("deploy config with an unknown field", ["--awml-deploy-config", "{deploy_field}"], "unknown field 'onnx_config.opset'"),
    ("deploy config with an unknown policy", ["--awml-deploy-config", "{deploy_policy}"], "tensorrt_config.precision_policy: 'int4'"),
    ("deploy config naming a missing checkpoint", ["--awml-deploy-config", "{deploy_checkpoint}"], "checkpoint_path 'work_dirs/best.pth' names"),
    ("deploy config breaking the spec's profile check", ["--awml-deploy-config", "{deploy_profile}"], "checks["),
    ("deploy config of another model", ["--awml-deploy-config", "{deploy_other}"], "component 'end2end' of"),
    ("training config given as the deploy config", ["--awml-deploy-config", "{deploy_training}"], "give AWML's deploy config, not a training config"),
    ("deploy config that does not exist", ["--awml-deploy-config", "{dir}/none.py"], "--awml-deploy-config {dir}/none.py does not exist"),
    ("deploy config at a static shape the spec does not deploy", ["--awml-spec", "mobilenetv2-car", "--awml-deploy-config", "{deploy_batch5}"],
     "the config fixes {{'batch': 5}}, none of the component's static shapes (batch1: {{'batch': 1}}"),
    ("deploy config exporting another image size", ["--awml-spec", "mobilenetv2-car", "--awml-deploy-config", "{deploy_size}"],
     "onnx_config.input_shape is [320, 320] (width, height), the input 'input' takes height and width [224, 224]..[224, 224]"),
    ("deploy config input_shape not a size", ["--awml-spec", "mobilenetv2-car", "--awml-deploy-config", "{deploy_shape}"],
     "onnx_config.input_shape: '224' is not something this harness can honour. Fix: give [width, height] in pixels, or None"),
    ("unknown int8 calibration", ["--awml-int8-calibration", "mse"], "--awml-int8-calibration 'mse': use one of minmax, entropy, percentile"),
    ("int8 samples below one", ["--awml-int8-samples", "0"], "--awml-int8-samples must be >= 1, got 0"),
    ("int8 samples not a number", ["--awml-int8-samples", "many"], "--awml-int8-samples 'many' is not an integer"),
]
if torch.cuda.device_count() == 0:
    OPTION_FAULTS.append(("cuda without a GPU", ["--awml-device", "cuda"], "--awml-device cuda:0: torch sees 0 CUDA device(s)"))


@pytest.mark.parametrize("args, fragment", [row[1:] for row in OPTION_FAULTS], ids=[row[0] for row in OPTION_FAULTS])
def test_a_bad_option_is_a_usage_error_naming_it(pytester, args, fragment):
    files = _files(pytester.path)
    spec = [] if "--awml-spec" in args else ["--awml-spec", "centerpoint-tiny"]
    result = pytester.runpytest("-p", "no:cacheprovider", *spec, *(a.format(**files) for a in args))
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == USAGE, text[-2000:]
    assert fragment.format(**files) in text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert len([line for line in text.splitlines() if line.startswith("ERROR: pytest-awml:")]) == 1


def test_schema_validation_never_reaches_the_network(tmp_path, monkeypatch):
    """A remote $ref that got past the file check (a schema object built in code) is refused by the
    registry, which retrieves nothing: no socket is opened."""
    import socket

    from pytest_awml import schema
    from pytest_awml.errors import AwmlError

    def no_network(*args, **kwargs):
        raise AssertionError("schema validation opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    remote = schema.Schema.of(tmp_path / "s.json", {"properties": {"a": {"$ref": "https://example.invalid/a.json"}}})
    with pytest.raises(AwmlError, match="the schema is checked offline"):
        remote.problems({"a": 1})
    local = schema.Schema.of(tmp_path / "s.json", {"definitions": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/definitions/n"}}})
    assert local.problems({"a": 1}) == [] and local.problems({"a": "x"}) == ["s.json: a: 'x' is not of type 'integer'"]


# -- a run that verified nothing is not green ---------------------------------------------------------
@pytest.mark.parametrize("extra, ret", [([], pytest.ExitCode.NO_TESTS_COLLECTED), (["--awml-allow-missing-device"], pytest.ExitCode.OK)],
                         ids=["fails", "allowed"])
def test_a_run_whose_every_test_skipped_is_not_green(pytester, extra, ret):
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec", "centerpoint-tiny", "-k", "test_drift", *extra)
    result.assert_outcomes(skipped=2)  # test_drift without --awml-golden
    assert result.ret == ret
    assert ("nothing was verified" in result.stdout.str()) is (ret != pytest.ExitCode.OK)


def test_latency_without_pytest_benchmark_skips_saying_why(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark", "--awml-spec", "centerpoint-tiny",
                                "--awml-backends", "pytorch,onnxruntime", "-k", "test_latency and voxel", "-rs")
    result.assert_outcomes(skipped=2)
    text = result.stdout.str()
    assert "SKIPPED [2]" in text and "pytest-benchmark is not loaded (-p no:benchmark" in text
    assert "fixture 'benchmark' not found" not in text and result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


# -- point clouds: DataError naming the file ------------------------------------------------------------
def _pcd(header: dict[str, str], body: bytes) -> bytes:
    lines = [f"{key} {value}" for key, value in {"VERSION": "0.7", **header}.items()]
    return ("\n".join(lines) + "\n").encode() + body


XYZI = {"FIELDS": "x y z intensity", "SIZE": "4 4 4 4", "TYPE": "F F F F", "COUNT": "1 1 1 1", "WIDTH": "2", "HEIGHT": "1",
        "POINTS": "2"}
TWO_POINTS = np.arange(8, dtype=np.float32).tobytes()
DATA_FAULTS = [
    # (id, file name, content, data options, message fragment)
    ("point_features not a number", "scan.bin", TWO_POINTS, {"point_features": "abc"}, "point_features=abc: .bin scans are N x 4"),
    ("point_features out of range", "scan.bin", TWO_POINTS, {"point_features": "3"}, "point_features=3"),
    ("typo in a data option", "scan.bin", TWO_POINTS, {"point_feature": "4"}, "data option(s) point_feature unknown"),
    ("bin of the wrong width", "scan.bin", TWO_POINTS, {}, "pass --awml-data-option point_features=4"),
    ("npy of strings", "scan.npy", None, {}, "holds <U3 values; expected numbers"),
    ("npy of the wrong shape", "scan.npy", np.zeros((3, 7), np.float32), {}, "shape (3, 7); expected N x 4 or N x 5"),
    ("npy that is not one", "scan.npy", b"not numpy", {}, "not a plain numpy array"),
    ("unknown suffix", "scan.ply", b"ply", {}, "unknown point cloud format"),
    ("pcd FIELDS and SIZE disagree", "scan.pcd", _pcd({**XYZI, "SIZE": "4 4 4", "DATA": "binary"}, TWO_POINTS),
     {}, "disagree on the number of fields (FIELDS 4, SIZE 3, TYPE 4, COUNT 4)"),
    ("pcd cut short", "scan.pcd", _pcd({**XYZI, "DATA": "binary"}, TWO_POINTS[:16]), {}, "binary PCD is 16 bytes of data, the header says 2 points x 16 bytes"),
    ("pcd ascii cut short", "scan.pcd", _pcd({**XYZI, "DATA": "ascii"}, b"1 2 3 4\n"), {}, "the PCD header says 2 points, the file holds 1"),
    ("pcd bad compressed data", "scan.pcd", _pcd({**XYZI, "DATA": "binary_compressed"}, b"\x10\x00\x00\x00\x20\x00\x00\x00garbage"),
     {}, "pypcd4 cannot read its binary_compressed data"),
    ("pcd without z", "scan.pcd", _pcd({**XYZI, "FIELDS": "x y w intensity", "DATA": "ascii"}, b"1 2 3 4\n5 6 7 8\n"), {},
     "PCD has no field(s) ['z']"),
    ("pcd with a bad type", "scan.pcd", _pcd({**XYZI, "TYPE": "F F F Q", "DATA": "ascii"}, b"1 2 3 4\n5 6 7 8\n"), {},
     "malformed PCD header (TYPE of field intensity: 'Q' is not F, U or I"),
    ("pcd SIZE not a number", "scan.pcd", _pcd({**XYZI, "SIZE": "four 4 4 4", "DATA": "binary"}, TWO_POINTS), {},
     "malformed PCD header (SIZE of field x: 'four' is not a whole number"),
    ("pcd SIZE no float has", "scan.pcd", _pcd({**XYZI, "SIZE": "3 4 4 4", "DATA": "binary"}, TWO_POINTS), {},
     "SIZE/TYPE of field x: TYPE F with SIZE 3; F is 4 or 8 bytes"),
    ("pcd WIDTH not a number", "scan.pcd", _pcd({**XYZI, "WIDTH": "abc", "DATA": "binary_compressed"}, TWO_POINTS), {},
     "WIDTH: 'abc' is not a whole number"),
    ("pcd VIEWPOINT not numbers", "scan.pcd", _pcd({**XYZI, "VIEWPOINT": "a b c", "DATA": "ascii"}, b"1 2 3 4\n5 6 7 8\n"), {},
     "VIEWPOINT: 'a b c' is not 7 numbers"),
    ("pcd COUNT past any point cloud", "scan.pcd", _pcd({**XYZI, "COUNT": "100000000000 1 1 1", "DATA": "binary"}, TWO_POINTS), {},
     "COUNT: 100000000003 values per point, over the 4096"),
    ("pcd compressed POINTS past its data", "scan.pcd", _pcd({**XYZI, "POINTS": "99999999", "DATA": "binary_compressed"},
                                                              b"\x10\x00\x00\x00\x20\x00\x00\x00" + bytes(16)), {},
     "POINTS: the header says 99999999 points x 16 bytes"),
    ("pcd ascii rows of the wrong width", "scan.pcd", _pcd({**XYZI, "DATA": "ascii"}, b"1 2 3\n5 6 7\n"), {}, "pypcd4 cannot read its ascii data"),
    ("not a pcd at all", "scan.pcd", b"\x00" * 100, {}, "no PCD header"),
    ("no point is finite", "scan.bin", np.full((2, 4), np.nan, np.float32).tobytes(), {"point_features": "4"}, "no point with finite coordinates"),
]


@pytest.mark.parametrize("name, content, options, fragment", [row[1:] for row in DATA_FAULTS], ids=[row[0] for row in DATA_FAULTS])
def test_a_bad_scan_is_a_data_error_naming_the_file(tmp_path, name, content, options, fragment):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.array([["abc"] * 4]) if content is None else content)
    with pytest.raises(DataError) as info:
        data.load(path, options, TINY)
    assert fragment in str(info.value)
    assert str(path) in str(info.value) or "option" in str(info.value)


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_pcd_files_of_every_encoding_read_as_x_y_z_intensity(tmp_path, encoding):
    from pypcd4 import Encoding, PointCloud

    points = np.random.default_rng(0).uniform(-20, 20, (50, 4)).astype(np.float32)
    cloud = PointCloud.from_points(points, ("x", "y", "z", "intensity"), (np.float32,) * 4)
    cloud.save(tmp_path / "scan.pcd", encoding=Encoding(encoding))
    (scene,) = data.load(tmp_path / "scan.pcd", {})
    (sweep,) = scene.sweeps
    np.testing.assert_allclose(sweep.points, points, atol=1e-4)
    assert sweep.time_s == 0.0 and sweep.points.dtype == np.float32


def test_a_scan_cut_to_the_pillar_limit_says_so(tmp_path, caplog):
    grid = np.stack(np.meshgrid(np.arange(128), np.arange(128)), -1).reshape(-1, 2)  # one point per pillar of the tiny grid
    pillar = np.asarray(TINY.voxel_size[:2])
    xy = (grid + 0.5) * pillar + np.asarray(TINY.point_cloud_range[:2])
    points = np.column_stack([xy, np.zeros(len(xy)), np.ones(len(xy))]).astype(np.float32)
    (tmp_path / "scan.bin").write_bytes(points.tobytes())
    assert data.occupied_pillars(points, TINY) == 128 * 128 > TINY.max_voxels
    with caplog.at_level(logging.WARNING), pytest.warns(DataWarning, match=f"{128 * 128} pillars; the model keeps the first {TINY.max_voxels}"):
        data.load(tmp_path / "scan.bin", {"point_features": "4"}, TINY)
    assert "are cut from every test" in caplog.text
    with pytest.warns(DataWarning):  # the spec's reader is the same, bound to its model
        from model_specs.centerpoint.spec import TINY_SPEC

        TINY_SPEC.load_data(tmp_path / "scan.bin", {"point_features": "4"})


def test_what_a_data_reader_changed_is_kept_for_the_report(tmp_path):
    import dataclasses
    import warnings

    import toy
    from pytest_awml import models
    from pytest_awml.workspace import Workspace

    def load_data(path, options):
        warnings.warn(DataWarning(f"{path}: 3 points cut"), stacklevel=2)
        return toy.make_samples(2, 0)

    spec = dataclasses.replace(toy.SPEC, load_data=load_data)
    plan = toy.plan(tmp_path, specs=(spec,), data=tmp_path)
    with pytest.warns(DataWarning, match="3 points cut"):  # still shown by pytest's warning summary
        loaded = Workspace(plan, ArtifactStore(tmp_path)).model(spec)
    assert loaded.notes == (f"{tmp_path}: 3 points cut",)
    workspace = Workspace(plan, ArtifactStore(tmp_path))
    with workspace.collector.collecting() as produced, pytest.warns(DataWarning):
        workspace.model(spec)
    with workspace.collector.collecting() as later:
        workspace.model(spec)
    assert produced.notes == [("toy", f"{tmp_path}: 3 points cut")] and later.notes == []
    assert models.load(dataclasses.replace(spec, load_data=lambda p, o: toy.make_samples(1, 0)), plan.options).notes == ()
    from pytest_awml import summary

    results = Results()
    results.add(DataNote(test_id="t", spec="toy", data="scan.bin", note="scan.bin: 3 points cut"))
    shown = summary.lines(results, None)
    assert shown == ["data toy: scan.bin: 3 points cut"]


# -- artifacts: verified by content, written with normal permissions, locks that give up ---------------
def _tiny_onnx(path: Path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_a_poisoned_cache_is_rebuilt_not_trusted(tmp_path):
    """A corrupt file whose manifest was corrupted to match (a restored CI cache) is refused by its content."""
    store = ArtifactStore(tmp_path)
    kwargs = dict(spec="s", component="c", format="onnx", filename="c.onnx", key_parts={"k": 1}, build=_tiny_onnx, verify=onnx_problem)
    first = store.get_or_build(**kwargs)
    first.path.write_bytes(b"\x08\x07garbage that is no protobuf")
    manifest = first.path.parent / "manifest.json"
    poisoned = json.loads(manifest.read_text())
    from pytest_awml.paths import sha256_file

    poisoned["sha256"] = sha256_file(first.path)
    manifest.write_text(json.dumps(poisoned))
    second = store.get_or_build(**kwargs)
    assert not second.reused and "its content is refused: onnx.checker" in second.rebuilt_reason
    assert onnx_problem(second.path) is None


@pytest.mark.parametrize("damage", ["garbage", "cut", "flipped byte"])
def test_stored_outputs_that_do_not_read_back_are_recomputed(tmp_path, damage):
    """Reference outputs kept across runs (``reference-outputs``) are checked by reading them, not only
    by the manifest's hash: a corrupt file under a matching manifest is recomputed, not a raw traceback."""
    import toy
    from pytest_awml.paths import sha256_file
    from pytest_awml.stored_formats import REFERENCE_FORMAT
    from pytest_awml.workspace import Workspace

    plan = toy.plan(tmp_path)
    spec, component = toy.SPEC, toy.SPEC.components[0]
    expected = Workspace(plan, ArtifactStore(tmp_path / "store")).reference(spec, component)
    path = sorted((tmp_path / "store").glob(f"**/{component.name}.*.npz"))[0]  # one input's (one file each)
    content = path.read_bytes()
    path.write_bytes({"garbage": b"PK\x03\x04 not a zip", "cut": content[: len(content) // 2],
                      "flipped byte": content[:100] + bytes([content[100] ^ 0xFF]) + content[101:]}[damage])
    manifest = path.parent / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "sha256": sha256_file(path)}))
    workspace = Workspace(plan, ArtifactStore(tmp_path / "store"))
    with workspace.collector.collecting() as produced:
        again = workspace.reference(spec, component)
    stored = [a for a in produced.builds if a.format == REFERENCE_FORMAT]
    (rebuilt,) = [a for a in stored if not a.reused]
    assert rebuilt.path == path and "its content is refused" in rebuilt.rebuilt_reason
    for old, new in zip(expected, again):
        assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)


STORE_FAULTS = [  # (id, formats poisoned, change): each stored .npz rewritten and its manifest re-hashed to match
    ("zeroed reference and backend", ("reference-outputs", "backend-outputs"), np.zeros_like),
    ("offset", ("backend-outputs",), lambda a: a + 1),
    ("nan", ("backend-outputs",), lambda a: np.full_like(a, np.nan)),
    ("wrong shape", ("backend-outputs",), lambda a: a[:2]),
    ("wrong dtype", ("backend-outputs",), lambda a: a.astype(np.float64)),
]


@pytest.mark.parametrize("formats, change", [row[1:] for row in STORE_FAULTS], ids=[row[0] for row in STORE_FAULTS])
def test_poisoned_stored_outputs_fail_naming_the_store_not_the_backend(tmp_path, formats, change):
    """Stored outputs edited under re-hashed manifests read back cleanly; the run's check recomputes one and fails
    with StoreMismatch naming the file and how to clear it, before parity could pass on zeros or blame ONNX Runtime."""
    import toy
    from pytest_awml.paths import sha256_file
    from pytest_awml.errors import StoreMismatch
    from pytest_awml.workspace import Workspace

    component = toy.SPEC.components[0]

    def session():
        workspace = Workspace(toy.plan(tmp_path), ArtifactStore(tmp_path / "store"))
        try:
            return workspace.reference(toy.SPEC, component), workspace.outputs(toy.SPEC, component, CPU_FP32)
        finally:
            workspace.close()

    session()
    poisoned = []
    for manifest in (tmp_path / "store").glob("**/manifest.json"):
        meta = json.loads(manifest.read_text())
        if meta["format"] in formats:
            path = manifest.parent / meta["file"]
            with np.load(path) as stored:
                arrays = {name: change(stored[name]) for name in stored.files}
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)
            manifest.write_text(json.dumps({**meta, "sha256": sha256_file(path)}))
            poisoned.append(manifest.parent)
    with pytest.raises(StoreMismatch) as info:
        session()
    message = str(info.value)
    assert any(str(folder) in message for folder in poisoned) and "Clear it: delete" in message
    assert "differs from" not in message.split("(")[0]  # not a parity verdict on the backend


def test_onnx_runtime_on_a_corrupt_file_is_an_artifact_error(tmp_path):
    path = tmp_path / "c.onnx"
    path.write_bytes(b"\x08\x07garbage")
    runner = OnnxRuntimeRunner(path, CPU_FP32, ("y",), ["CPUExecutionProvider"])
    with pytest.raises(ArtifactError, match=f"ONNX Runtime cannot load {path}: .*Delete {tmp_path} to rebuild it"):
        runner.open()


def test_a_module_returning_other_outputs_than_declared_is_a_backend_error():
    runner = PyTorchRunner(torch.nn.Identity(), Target("pytorch", Device("cpu"), Precision.FP32), ("y", "z"), ("x",))
    with pytest.raises(BackendError, match="the module returned 1 outputs, the spec declares 2: y, z"):
        runner.run({"x": np.zeros(2, np.float32)})


def test_files_are_written_with_the_umask_s_mode_not_0600(tmp_path):
    write_atomic(tmp_path / "f.json", b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == FILE_MODE & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left


def test_a_held_lock_names_its_holder_and_gives_up(tmp_path, caplog):
    lock = tmp_path / "x.lock"
    with held(lock, "building s/c/onnx"):
        with caplog.at_level(logging.WARNING), pytest.raises(ArtifactError) as info:
            with held(lock, "building s/c/onnx", timeout_s=0.1):
                pass
    message = str(info.value)
    assert f"gave up after 0.1 s waiting for building s/c/onnx: the lock {lock} is held by pid {os.getpid()}" in message
    assert "--awml-lock-timeout" in message and "is held by pid" in caplog.text
    with held(lock, "after the holder let go", timeout_s=0.1):  # released: the next one gets it at once
        pass


# -- golden outputs: finite, repairable, locked ----------------------------------------------------------
def test_golden_outputs_holding_nan_are_refused(tmp_path):
    store = GoldenStore(tmp_path)
    with pytest.raises(ArtifactError, match="output y of sample 0 hold NaN or Inf. A reference must be finite"):
        store.write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.array([1.0, np.nan], np.float32)}], {"seed": 0})
    assert not (tmp_path / "s" / "c.npz").exists()


def test_golden_metadata_that_is_not_json_is_refused_then_repaired(tmp_path):
    store = GoldenStore(tmp_path)
    sample, output = [{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}]
    store.write("s", "c", sample, output, {"seed": 0})
    (tmp_path / "s" / "c.json").write_text("{ cut")
    with pytest.raises(ArtifactError, match="golden metadata .*c.json is unreadable .* rewrite it with --awml-update-golden"):
        store.read("s", "c")
    update = store.update("s", "c", sample, output, {"seed": 0}, {})
    assert "is unreadable" in update.replaced and store.read("s", "c").meta["seed"] == 0


def test_golden_layers_that_cannot_be_read_are_said_not_raised(tmp_path):
    """A cut golden layers file makes a drift failure say why it is not localized (the verdict stays the finding)."""
    from types import SimpleNamespace

    from pytest_awml import golden_layers

    path = golden_layers.path_of(tmp_path, "s", "c")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK not a zip")
    with pytest.raises(ArtifactError, match="golden layers .*c.layers.npz are unreadable .* rewrite them with --awml-update-golden"):
        golden_layers.read(path)
    found = golden_layers.first_divergence(tmp_path, SimpleNamespace(name="s"), SimpleNamespace(name="c"), None, [], {}, [])
    assert found.first is None and "are unreadable" in found.line() and found.line().startswith("first divergence: not localized")


def test_a_golden_set_being_written_is_locked(tmp_path):
    store = GoldenStore(tmp_path, lock_timeout_s=0.1)
    with held(tmp_path / "s.lock", "another update"):
        with pytest.raises(ArtifactError, match="waiting for writing the golden outputs of s"):
            store.write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}], {"seed": 0})


def test_a_golden_set_mixing_two_updates_is_refused_as_a_whole(tmp_path):
    """Two overlapping updates (seed 0 and seed 1) interleaved pair by pair: each pair is whole, the set is not."""
    store = GoldenStore(tmp_path)
    pair = ([{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}])
    store.write("s", "a", *pair, {"seed": 0, "weights_sha256": "w"})
    store.write("s", "b", *pair, {"seed": 0, "weights_sha256": "w"})
    assert store.read("s", "a") is not None and store.read("s", "b") is not None  # one update: a consistent set
    store.write("s", "b", *pair, {"seed": 1, "weights_sha256": "w"})  # the second run got as far as b
    for component in ("a", "b"):
        with pytest.raises(ArtifactError, match=r"golden set of s mixes updates \(a from seed 0.*b from seed 1.*--awml-update-golden"):
            store.read("s", component)
    store.write("s", "a", *pair, {"seed": 1, "weights_sha256": "w"})  # the whole set again, from one run
    assert store.read("s", "a").meta["seed"] == store.read("s", "b").meta["seed"] == 1


# -- a pipeline's stages: a typo is a SpecError naming it, never a silent change in how latency is measured ----
def _toy_stages(**changes):
    import toy

    return dataclasses.replace(toy.SPEC, pipeline=dataclasses.replace(toy.SPEC.pipeline, **changes))


STAGE_FAULTS = [
    # (id, PipelineSpec changes, field, message fragment); validate() sees these with the spec alone
    ("stage of a component it does not run", {"stage_components": {"enc": "encoder"}}, "pipeline.stage_components",
     "stage_components['enc'] names 'encoder', which this pipeline does not run (its components: enc, head)"),
    ("one component for two stages", {"stage_components": {"enc": "enc", "head": "enc"}}, "pipeline.stage_components",
     "stage_components gives 'enc' to 2 stages"),
    ("a stage without a name", {"stage_components": {"": "enc"}}, "pipeline.stage_components", "a stage named ''"),
]


QDQ_FAULTS = [
    # (id, the broken QDQ graph's keywords (tests/int8_graphs.qdq), message fragment): what TensorRT's parser would refuse
    ("int32 bias dequantized", {"int32_bias": True}, "DequantizeLinear 'bias_dq' dequantizes INT32"),
    ("asymmetric zero point", {"zero": 3}, "QuantizeLinear 'input_q' has zero point(s) [3]: TensorRT's int8 is symmetric"),
    ("scales counting another axis", {"axis": 1}, "DequantizeLinear 'weight_dq' has 4 per-channel scales on axis 1, its tensor 'w_q' is [4, 3, 3, 3]"),
    ("a scale of zero", {"weight_scales": np.array([0.1, 0.0, 0.1, 0.1])}, "DequantizeLinear 'weight_dq' has scale(s) <= 0"),
    ("quantized tensor fed to a float op", {"q_feeds_relu": True}, "QuantizeLinear 'input_q' feeds ['relu_on_int8'], not a DequantizeLinear"),
    ("per-channel scales at opset 11", {"opset": 11}, "DequantizeLinear 'weight_dq' has per-channel scales at opset 11"),
]


@pytest.mark.parametrize("changes, fragment", [row[1:] for row in QDQ_FAULTS], ids=[row[0] for row in QDQ_FAULTS])
def test_a_qdq_graph_trt_would_refuse_is_named_at_export(changes, fragment):
    from exporters.onnx_int8 import qdq_problems
    from int8_graphs import qdq

    arguments = {"weight_scales": np.full(4, 0.1), **changes}
    problems = qdq_problems(qdq(arguments.pop("weight_scales"), **arguments))
    assert any(fragment in p for p in problems), problems
    assert qdq_problems(qdq(np.full(4, 0.1))) == []  # the same graph unbroken passes


def test_int8_nodes_to_keep_float_that_the_graph_lacks_are_named(tmp_path):
    from exporters.errors import ExportError
    from exporters.onnx_int8 import Calibration, quantize_int8
    from int8_graphs import conv_net, feeds

    with pytest.raises(ExportError, match=r"node\(s\) \['conv9'\] to keep in float are not in net.onnx"):
        quantize_int8(conv_net(tmp_path / "net.onnx"), tmp_path / "q.onnx", feeds(1), Calibration.MINMAX, component="net",
                      exclude=["conv9"])


def test_bad_int8_settings_are_a_spec_error_naming_the_field():
    import toy

    from pytest_awml.quantization import Int8Settings
    from pytest_awml.spec import validate

    broken = dataclasses.replace(toy.SPEC, components=(dataclasses.replace(toy.SPEC.components[0], int8=Int8Settings(samples=0)),
                                                       *toy.SPEC.components[1:]))
    with pytest.raises(SpecError, match="samples must be an int >= 1, got 0"):
        validate(broken)


SHAPE_DRAW_FAULTS = [
    # (id, Component.shape_draws): test_shapes' cap on drawn sizes is a count of at least one, or None
    ("no draws", 0),
    ("a count as text", "3"),
]


@pytest.mark.parametrize("draws", [row[1] for row in SHAPE_DRAW_FAULTS], ids=[row[0] for row in SHAPE_DRAW_FAULTS])
def test_a_bad_shape_draw_cap_is_a_spec_error_naming_it(draws):
    import toy
    from pytest_awml.spec import validate

    encoder = dataclasses.replace(toy.SPEC.components[0], shape_draws=draws)
    with pytest.raises(SpecError, match="shape_draws") as info:
        validate(dataclasses.replace(toy.SPEC, components=(encoder, *toy.SPEC.components[1:])))
    assert f"must be an int >= 1 or None, got {draws!r}" in info.value.problem


@pytest.mark.parametrize("changes, field, fragment", [row[1:] for row in STAGE_FAULTS], ids=[row[0] for row in STAGE_FAULTS])
def test_a_bad_stage_declaration_is_a_spec_error_naming_it(changes, field, fragment):
    from pytest_awml.spec import validate

    with pytest.raises(SpecError, match="Fix: map each stage") as info:
        validate(_toy_stages(**changes))
    assert info.value.field == field and fragment in info.value.problem


STATIC_SHAPE_FAULTS = [
    # (id, static_shapes of the toy's encoder, message fragment); a run's loading (static_shapes.expand) refuses them
    ("a shape fixing a dim no input has", {"small": {"batch": 2}}, "static_shapes['small'] fixes 'batch', no dynamic dim of the inputs (n)"),
    ("a shape outside the dim's range", {"big": {"n": 9}}, "static_shapes['big'] gives 'n' the size 9, outside 2..8"),
    ("a shape fixing nothing", {"none": {}}, "static_shapes['none'] fixes no dim (the component's dims: n)"),
]


SEQUENCE_FAULTS = [
    # (id, changes to seqtoy's SequenceSpec, message fragment): spec.validate refuses them at load time
    ("one frame", {"frames": 1}, "frames must be an int >= 2"),
    ("no state", {"carries": ()}, "carries is empty"),
    ("an unknown component in order", {"order": ("enc", "step", "tail")}, "order names 'tail', which is not a component"),
    ("a carried output the component lacks", {"carries": (("step", "memroy_out", "step", "memory"),)},
     "step has no output 'memroy_out'"),
    ("a link running backwards", {"order": ("step", "enc")}, "enc must run before step in order"),
    ("an input fed twice", {"carries": (("step", "memory_out", "step", "memory"), ("step", "y", "step", "x"))},
     "step.x is fed twice"),
    ("a drift bound on no carried output", {"drift": {"fp32": {"y": Tolerance(1e-4)}}}, "drift['fp32']['y'] names no carried output"),
    ("frames from samples that is not a function", {"from_samples": "frames.pkl"}, "from_samples is not callable"),
    ("a compare that is no function", {"compare": "boxes"}, "compare is not callable"),
    ("a minimum of no items", {"min_compared": 0}, "min_compared must be an int >= 1, got 0"),
    ("a metric without limits", {"metric": MetricSpec(lambda outputs, frames: None, {})}, "metric: max_delta is empty"),
]


@pytest.mark.parametrize("changes, fragment", [row[1:] for row in SEQUENCE_FAULTS], ids=[row[0] for row in SEQUENCE_FAULTS])
def test_a_bad_sequence_is_a_spec_error_naming_it(changes, fragment):
    import seqtoy
    from pytest_awml.sequence import Feed
    from pytest_awml.spec import validate

    spec = seqtoy.spec()
    changes = {k: tuple(Feed(*f) for f in v) if k == "carries" else v for k, v in changes.items()}
    with pytest.raises(SpecError, match="sequence") as info:
        validate(dataclasses.replace(spec, sequence=dataclasses.replace(spec.sequence, **changes)))
    assert fragment in info.value.problem


def test_frames_that_hold_the_state_after_the_first_are_a_data_error():
    """The state after the first frame is the pipeline's own: a later frame that brings it would hide the memory."""
    import seqtoy
    from pytest_awml.sequence import roll

    spec = seqtoy.spec()
    frames = seqtoy.make_frames(None, 3, 0)
    frames[2]["step"]["memory"] = frames[0]["step"]["memory"]
    with pytest.raises(DataError, match="frame 2 of the sequence gives step its carried input.s. memory"):
        roll(spec.sequence, frames, lambda name, inputs: {o: np.zeros((1, seqtoy.WIDTH), np.float32)
                                                          for o in spec.component(name).output_names})


@pytest.mark.parametrize("shapes, fragment", [row[1:] for row in STATIC_SHAPE_FAULTS], ids=[row[0] for row in STATIC_SHAPE_FAULTS])
def test_a_bad_static_shape_is_a_spec_error_naming_it(shapes, fragment):
    import toy
    from pytest_awml import static_shapes

    encoder = dataclasses.replace(toy.SPEC.components[0], static_shapes=shapes)
    spec = dataclasses.replace(toy.SPEC, components=(encoder, *toy.SPEC.components[1:]))
    with pytest.raises(SpecError, match="Fix: name dims of the component's inputs") as info:
        static_shapes.expand(spec)
    assert fragment in info.value.problem


LABEL_FLIP_FAULTS = [
    # (id, max_label_flips, message fragment): a share, or nothing
    ("a flip budget above one", 1.5, "max_label_flips must be a share in [0, 1], got 1.5"),
    ("a negative flip budget", -0.1, "max_label_flips must be a share in [0, 1], got -0.1"),
    ("a flip budget that is no number", "few", "max_label_flips must be a share in [0, 1], got 'few'"),
]


@pytest.mark.parametrize("budget, fragment", [row[1:] for row in LABEL_FLIP_FAULTS], ids=[row[0] for row in LABEL_FLIP_FAULTS])
def test_a_bad_label_flip_budget_is_a_spec_error_naming_it(budget, fragment):
    import toy
    from pytest_awml.spec import validate

    encoder = dataclasses.replace(toy.SPEC.components[0], tolerances={"fp32": {"*": Tolerance(1e-5, 1e-5, max_label_flips=budget)}})
    with pytest.raises(SpecError) as info:
        validate(dataclasses.replace(toy.SPEC, components=(encoder, *toy.SPEC.components[1:])))
    assert fragment in info.value.problem


REORDER_FAULTS = [
    # (id, Tolerance keywords, message fragment): a share of rows along an axis every output it covers has
    ("a reorder budget above one", {"max_reordered_rows": 1.5}, "max_reordered_rows must be a share in [0, 1], got 1.5"),
    ("a reorder budget that is no number", {"max_reordered_rows": "some"}, "max_reordered_rows must be a share in [0, 1], got 'some'"),
    ("a negative row axis", {"max_reordered_rows": 0.1, "row_axis": -1}, "row_axis must be an int >= 0, got -1"),
    ("a set-aside budget above one", {"max_unmatched_rows": 2}, "max_unmatched_rows must be a share in [0, 1], got 2"),
    ("a row axis the output lacks", {"max_reordered_rows": 0.1, "row_axis": 2}, "reorders rows along axis 2, which an output of rank 2 lacks"),
]


@pytest.mark.parametrize("keywords, fragment", [row[1:] for row in REORDER_FAULTS], ids=[row[0] for row in REORDER_FAULTS])
def test_a_bad_row_reorder_budget_is_a_spec_error_naming_it(keywords, fragment):
    import toy
    from pytest_awml.spec import validate

    encoder = dataclasses.replace(toy.SPEC.components[0], tolerances={"fp32": {"*": Tolerance(1e-5, 1e-5, **keywords)}})
    with pytest.raises(SpecError) as info:
        validate(dataclasses.replace(toy.SPEC, components=(encoder, *toy.SPEC.components[1:])))
    assert fragment in info.value.problem


BUILT_STAGE_FAULTS = [
    # (id, PipelineSpec changes, message fragment); known once the spec's build made the pipeline (its stages)
    ("stage the pipeline does not time", {"stage_components": {"encoder": "enc"}},
     "stage_components names the stage 'encoder', which the pipeline does not time (its stages: enc, head)"),
    ("stage share of a stage it does not time", {"latency": LatencySettings(stage_shares={"haed": 0.5})},
     "latency.stage_shares names the stage 'haed'"),
]


@pytest.mark.parametrize("changes, fragment", [row[1:] for row in BUILT_STAGE_FAULTS], ids=[row[0] for row in BUILT_STAGE_FAULTS])
def test_a_stage_the_built_pipeline_does_not_time_is_a_spec_error(tmp_path, changes, fragment):
    import toy
    from pytest_awml.spec import validate
    from pytest_awml.workspace import Workspace

    spec = validate(_toy_stages(**changes))  # the spec alone cannot tell: the stages are the built pipeline's
    workspace = Workspace(toy.plan(tmp_path, specs=(spec,)), ArtifactStore(tmp_path))
    with pytest.raises(SpecError, match="name the stages as the pipeline's class declares them") as info:
        workspace.pipeline(spec, REFERENCE)
    assert info.value.field == "pipeline" and fragment in info.value.problem


# -- the JSON report is never lost, nor replaced without a word -------------------------------------------
def test_a_report_that_cannot_be_written_goes_elsewhere_with_a_warning(tmp_path, caplog):
    (tmp_path / "a_file").write_text("x")
    with caplog.at_level(logging.WARNING):
        written = run_report.write(Results(), tmp_path / "a_file" / "report.json", {"seed": 0}, interrupted=False)
    assert written.path != tmp_path / "a_file" / "report.json" and json.loads(written.path.read_text())["run"] == {"seed": 0}
    assert f"it is at {written.path}" in written.notices[-1] and "could not be written" in caplog.text
    written.path.unlink()


def _with_tests(*test_ids: str) -> Results:
    results = Results()
    for test_id in test_ids:
        results.add(SkippedTest(test_id=test_id, reason="r"))
    return results


def test_a_narrower_run_keeps_the_fuller_report_and_says_so(tmp_path):
    path = tmp_path / "report.json"
    run_report.write(_with_tests("a", "b"), path, {"n": 1}, interrupted=False)
    rows = [  # (this run's tests, interrupted, where its report goes, kept as previous, notice)
        (("a", "b"), False, path, None, None),  # the same tests again: replaced, nothing to say
        (("a",), False, path, {"n": 2}, "held records of 1 test(s) this run did not report, e.g. b"),  # -k: the fuller one kept
        (("a", "b"), True, tmp_path / "report.interrupted.json", None, "interrupted"),  # Ctrl-C: the report stays
    ]
    for n, (tests, interrupted, where, previous, notice) in enumerate(rows, start=2):
        written = run_report.write(_with_tests(*tests), path, {"n": n}, interrupted=interrupted)
        assert written.path == where and json.loads(where.read_text())["run"] == {"n": n}
        kept = tmp_path / "report.previous.json"
        assert (json.loads(kept.read_text())["run"] if previous else None) == previous
        assert (notice is None and written.notices == ()) or notice in written.notices[0]
        kept.unlink(missing_ok=True)
    assert json.loads(path.read_text())["run"] == {"n": 3}  # the interrupted run left it as it was
    path.write_text("{not json")  # a report that cannot be read is kept, not lost
    assert "could not be read" in run_report.write(_with_tests("a"), path, {}, interrupted=False).notices[0]
    assert (tmp_path / "report.previous.json").read_text() == "{not json"


# -- awml-report: 1 is a regression, 2 a bad input, 3 a bug -------------------------------------------------
def _bench_file(path: Path, benchmarks: list) -> str:
    path.write_text(json.dumps({"machine_info": {"node": "m"}, "datetime": "now", "benchmarks": benchmarks}))
    return str(path)


def _bench(name: str, median_s: float) -> dict:
    return {"name": name, "stats": {"median": median_s}, "extra_info": {}}


def test_awml_report_faults(tmp_path, monkeypatch):
    base = _bench_file(tmp_path / "0001.json", [_bench("a", 0.01), _bench("b", 0.01)])
    empty = _bench_file(tmp_path / "0002.json", [])
    no_stats = _bench_file(tmp_path / "0003.json", [{"name": "a"}])
    only_a = _bench_file(tmp_path / "0004.json", [_bench("a", 0.01)])
    (tmp_path / "out_file").write_text("x")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    bad = {  # (file name, benchmarks): each is bad input, exit 2, never a crash (3) nor a verdict (0 or 1)
        "negative": [_bench("a", -0.01)],
        "nan": [_bench("a", float("nan"))],
        "inf": [_bench("a", float("inf"))],
        "zero": [_bench("a", 0.0)],
        "twice": [_bench("a", 0.01), _bench("a", 0.02)],
        "threshold_text": [{**_bench("a", 0.01), "extra_info": {"regression_threshold": "abc"}}],
        "p99_nan": [{**_bench("a", 0.01), "extra_info": {"p99_ms": float("nan")}}],
        "extra_list": [{**_bench("a", 0.01), "extra_info": [1]}],
        "stages_list": [{**_bench("a", 0.01), "extra_info": {"stages": [1, 2]}}],
        "stage_text": [{**_bench("a", 0.01), "extra_info": {"stages": {"pre": {"p50_ms": "fast"}}}}],
        "rounds_text": [{**_bench("a", 0.01), "extra_info": {"rounds_ms": "fast"}}],
        "rounds_nan": [{**_bench("a", 0.01), "extra_info": {"rounds_ms": [10.0, float("nan")]}}],
        "rounds_empty": [{**_bench("a", 0.01), "extra_info": {"rounds_ms": []}}],
    }
    bad_files = {name: _bench_file(tmp_path / f"bad_{name}.json", benches) for name, benches in bad.items()}
    machine_list = tmp_path / "machine_list.json"
    machine_list.write_text(json.dumps({"machine_info": ["m"], "benchmarks": [_bench("a", 0.01)]}))
    bad_parity = tmp_path / "bad_parity.json"
    bad_parity.write_text(json.dumps({"parity": [{"max_abs": "big", "rtol": 0.1, "atol": 0.1, "passed": True}]}))
    rows = [
        *[([base, path], report.EXIT_USAGE) for path in bad_files.values()],  # as the current run
        *[([path, base], report.EXIT_USAGE) for path in bad_files.values()],  # as the baseline
        ([base, str(nested)], report.EXIT_USAGE),  # JSON nested past Python's stack: bad input, not awml-report's bug
        ([base, str(machine_list)], report.EXIT_USAGE),
        ([base, only_a, "--awml-json", str(nested)], report.EXIT_USAGE),
        ([base, only_a, "--awml-json", str(bad_parity)], report.EXIT_USAGE),
        ([base, empty], report.EXIT_USAGE),  # an empty current run
        ([base, no_stats], report.EXIT_USAGE),  # not pytest-benchmark's output
        ([base, only_a, "--out", str(tmp_path / "out_file")], report.EXIT_USAGE),  # --out names a file
        ([base, only_a, "--awml-json", str(tmp_path / "out_file")], report.EXIT_USAGE),  # not a JSON report
        ([base, only_a, "--threshold", "-1"], report.EXIT_USAGE),
        ([base, only_a, "--out", str(tmp_path / "out")], report.EXIT_OK),  # b is missing: reported, not a regression
    ]
    for args, code in rows:
        assert report.main(args) == code, args
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| `b` | 10.000 | – |" in md and "MISSING |" in md and "**Missing:** 1 test(s)" in md
    monkeypatch.setattr(report, "markdown", lambda runs, rows: 1 / 0)
    assert report.main([base, only_a, "--out", str(tmp_path / "out")]) == report.EXIT_INTERNAL  # a bug is not "regressed"


def test_awml_report_names_what_is_wrong(tmp_path, caplog):
    base = _bench_file(tmp_path / "base.json", [_bench("a", 0.01)])
    rows = [([_bench("a", 0.01), _bench("a", 0.02)], "the test a is listed twice"),
            ([_bench("a", -0.01)], "benchmark 0 (a): stats.median is -0.01, not a positive finite number of seconds"),
            ([_bench("a", float("nan"))], "stats.median is nan"),
            ([{**_bench("a", 0.01), "extra_info": {"regression_threshold": "abc"}}], "extra_info.regression_threshold is 'abc'"),
            ([{**_bench("a", 0.01), "extra_info": {"rounds_ms": [1.0, -2.0]}}],
             "extra_info.rounds_ms is [1.0, -2.0], not a list of finite numbers >= 0 (ms per round)")]
    for benches, fragment in rows:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert report.main([base, _bench_file(tmp_path / "cur.json", benches), "--out", str(tmp_path / "out")]) == report.EXIT_USAGE
        assert fragment in caplog.text and "Traceback" not in caplog.text


def test_awml_report_handles_ten_thousand_tests_in_seconds(tmp_path):
    """Two runs of 10 000 tests each (a bar per test took 40 ms and 0.38 MB each, and minutes in all):
    the plots keep the largest changes, the tables every test. The bound is generous for a loaded CI machine."""
    import time

    rng = np.random.default_rng(0)
    names = [f"test_latency[spec/component{i}/onnxruntime-cpu-fp32]" for i in range(10_000)]
    runs = [_bench_file(tmp_path / f"{label}.json", [_bench(n, float(m)) for n, m in zip(names, rng.uniform(0.01, 0.012, len(names)))])
            for label in ("0001_base", "0002_current")]
    start = time.perf_counter()
    code = report.main([*runs, "--out", str(tmp_path / "out")])
    seconds = time.perf_counter() - start
    assert code in (report.EXIT_OK, report.EXIT_REGRESSION) and seconds < 60, seconds
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.count("| `test_latency[") == 10_000
    html_page = (tmp_path / "out" / "report.html").read_text()
    assert html_page.count("<tr class=") == 10_000 and f"({report.PLOTTED} of 10000 tests, the largest changes" in html_page


# -- the restricted config reader: bounded, and every error a SpecError ------------------------------------
CONFIG_FAULTS = [
    ("x = 2 ** 64\ny = x * x * x * x * x\n", "is over 256 bits"),
    ("x = [1] * 10 ** 12\n", "would repeat a sequence past"),
    ("x = list(range(10 ** 12))\n", "items, over the 65536 a config needs"),
    ("x = [1]\n" + "x = x + x\n" * 20, "'+' would make 131072 items"),
    # bounded before the work (issue 29): each of these took minutes or gigabytes when checked after it
    ("x = sum([[0] * 60000] * 60000, [])\n", "sum(...) would make 3600000000 items"),
    ("x = sum([[0]] * 60000, [])\n", "sum(...): reading the file would take over"),
    ("x = '%01500000000d' % 0\n", "'%' formatting would make"),
    ("x = '%.1500000000f' % 1.0\n", "'%' formatting would make"),
    ("x = '%*d' % (5, 1)\n", "'*' widths are outside the readable subset"),
    ("x = f'{0:01500000000d}'\n", "an f-string would make"),
    ("x = '{:>1500000000}'.format(1)\n", "str.format would make"),
    ("x = '{0.__class__}'.format(1)\n", "outside the readable subset (plain fields only)"),
    ("x = dict(**[1])\n", "'**' of a list (a dict with str keys is readable)"),
    ("n = dict(a=1)\nx = dict(a=2, **n)\n", "keyword 'a' is given twice in one call"),
    ("x = dict(*[1])\n", "'*' in a call is outside the readable subset"),
    ("x = 1 << 10 ** 9\n", "is over 256 bits"),
    ("x = ('a' * 60000).replace('a', 'a' * 60000)\n", ".replace(...) would make"),
    ("x = ','.join(['a' * 60000] * 2)\n", ".join(...) would make"),
    ("x = round(1, -10 ** 9)\n", "digits is beyond what a config needs"),
    ("x = [0] * 60000\nx.extend(x)\n", ".extend(...) would make 120000 items"),
    ("x = 'a'\nx.update(dict(b=1))\n", ".update(...) on a str is outside the readable subset"),
    ("x = [0] * 60000\ny = [x] * 60000\nz = str(y)\n", "holds over 65536 items (counting shared ones each time)"),
    ("x = [0] * 60000\ny = [x] * 60000\nz = y == [x] * 60000\n", "a comparison holds over 65536 items"),
    ("x = [0] * 60000\ny = [x] * 60000\n", "the file's values holds over 65536 items"),
    ("x = []\n" + "x = [x]\n" * 100, "nests deeper than the 64 levels"),
    ("".join(f"a{i} = [0] * 60000\n" for i in range(20)), "reading the file would take over 1048576 steps"),
    ("x = int('abc')\n", "ValueError: invalid literal"),
    ("x = 1 < 'a'\n", "TypeError: '<' not supported"),
    ("x = -'a'\n", "bad operand type for unary -"),
    ("x = {[1]: 2}\n", "unhashable type"),
    ("x = " + "(" * 300 + "1" + ")" * 300 + "\n", "too many nested parentheses"),
    ("import os\n", "imports are not read without mmengine"),
    ("x = open('/etc/passwd')\n", "is outside the readable subset"),
]


@pytest.mark.parametrize("text, fragment", CONFIG_FAULTS, ids=[f"config{i}" for i in range(len(CONFIG_FAULTS))])
def test_the_config_reader_is_bounded(tmp_path, text, fragment):
    path = tmp_path / "config.py"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(SpecError, match="--awml-config") as info:
        read_config(path)
    assert fragment in str(info.value)
    assert time.perf_counter() - started < CONFIG_ANSWER_S  # refused from the operands, before the work



# -- training-config fields a spec cannot honour: refused by name (the spec's configure, as --awml-config runs it) --
CP_TINY_CONFIG, YOLOX_TINY_CONFIG, CAL_TINY_CONFIG = "centerpoint_tiny.py", "yolox_elan_tiny.py", "calibration_resnet18_5ch_tiny.py"
FIELD_FAULTS = [
    # (id, config, lines appended to it, message fragment)
    ("unknown key", CP_TINY_CONFIG, "model['pts_backbone']['depths'] = [3, 3]", "pts_backbone.depths: not read by this spec"),
    ("in_channels against the layer before", CP_TINY_CONFIG, "model['pts_middle_encoder']['in_channels'] = 64",
     "pts_middle_encoder.in_channels is 64, but pts_voxel_encoder.feat_channels[-1] makes it 32"),
    ("scatter canvas against the grid", CP_TINY_CONFIG, "model['pts_middle_encoder']['output_shape'] = (64, 64)",
     "pts_middle_encoder.output_shape is [64, 64], but the voxel grid (ny, nx)"),
    ("num_class against class_names", CP_TINY_CONFIG,
     "model['pts_bbox_head']['tasks'] = [dict(num_class=4, class_names=['car', 'truck', 'bus', 'bicycle', 'pedestrian'])]",
     "pts_bbox_head.tasks[0].num_class is 4, but its class_names makes it 5"),
    ("coder stride against the network", CP_TINY_CONFIG, "model['pts_bbox_head']['bbox_coder']['out_size_factor'] = 4",
     "bbox_coder.out_size_factor is 4, but pts_backbone.layer_strides and pts_neck.upsample_strides"),
    ("code size", CP_TINY_CONFIG, "model['pts_bbox_head']['bbox_coder']['code_size'] = 7", "bbox_coder: not supported: code_size=7"),
    ("no centre range", CP_TINY_CONFIG, "model['pts_bbox_head']['bbox_coder']['post_center_range'] = None",
     "post_center_range=None (mmdet3d's coder raises NotImplementedError"),
    ("test_cfg grid against the grid", CP_TINY_CONFIG, "model['test_cfg']['pts']['grid_size'] = [64, 64, 1]", "test_cfg.pts.grid_size is [64, 64, 1]"),
    ("encoder width against the point columns", CP_TINY_CONFIG, "model['pts_voxel_encoder']['in_channels'] = 4",
     "pts_voxel_encoder.in_channels is 4, but the test pipeline's columns"),
    ("a ring column", CP_TINY_CONFIG, "test_pipeline = [dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, "
     "use_dim=[0, 1, 2, 4])]\nmodel['pts_voxel_encoder']['in_channels'] = 4",
     "point columns ['x', 'y', 'z', 'ring']"),
    ("sweeps of other columns", CP_TINY_CONFIG, "test_pipeline[1]['load_dim'] = 4", "LoadPointsFromMultiSweeps.load_dim is 4"),
    ("a transform that moves points", CP_TINY_CONFIG, "test_pipeline = test_pipeline + [dict(type='PointShuffle')]", "transform PointShuffle"),
    ("a norm-free layer", CP_TINY_CONFIG, "model['pts_backbone']['norm_cfg'] = None", "pts_backbone.norm_cfg: not supported: None"),
    ("a conv type", CP_TINY_CONFIG, "model['pts_backbone']['conv_cfg'] = dict(type='DCNv2')", "type 'DCNv2'"),
    ("non-deterministic voxels", CP_TINY_CONFIG, "model['data_preprocessor']['voxel_layer']['deterministic'] = False",
     "deterministic=False"),
    ("a voxel size of two numbers", CP_TINY_CONFIG, "model['data_preprocessor']['voxel_layer']['voxel_size'] = [0.32, 0.32]",
     "data_preprocessor.voxel_layer.voxel_size has 2 numbers, 3 expected"),
    ("yolox: unknown key", YOLOX_TINY_CONFIG, "model['backbone']['spp_kernal_sizes'] = (5, 9, 13)", "backbone.spp_kernal_sizes: not read"),
    ("yolox: num_classes against classes", YOLOX_TINY_CONFIG, "model['bbox_head']['num_classes'] = 9",
     "bbox_head.num_classes is 9, but the config's classes (8 names) makes it 8"),
    ("yolox: a transform that changes the image", YOLOX_TINY_CONFIG, "test_pipeline = test_pipeline + [dict(type='RandomCropWithROI')]",
     "transform RandomCropWithROI"),
    ("yolox: batch padding", YOLOX_TINY_CONFIG, "model['data_preprocessor'] = dict(pad_size_divisor=96)", "pad_size_divisor=96"),
    ("yolox: class-agnostic NMS", YOLOX_TINY_CONFIG, "model['test_cfg'] = dict(nms=dict(type='nms', iou_threshold=0.65, class_agnostic=True))",
     "class_agnostic=True"),
    ("calibration: unknown key", CAL_TINY_CONFIG, "model['backbone']['expansion'] = 4", "backbone.expansion: not read"),
    ("calibration: train mode", CAL_TINY_CONFIG, "test_pipeline = [dict(type='CalibrationClassificationTransform', mode='train')]",
     "mode='train'"),
    ("calibration: a probability", CAL_TINY_CONFIG,
     "test_pipeline = [dict(type='CalibrationClassificationTransform', mode='test', miscalibration_probability=2)]",
     "miscalibration_probability is 2.0, outside [0, 1]"),
    ("calibration: normalised input", CAL_TINY_CONFIG, "data_preprocessor = dict(mean=[0] * 5, std=[255] * 5)",
     "data_preprocessor: not supported: mean/std"),
]


@pytest.mark.parametrize("config, lines, fragment", [row[1:] for row in FIELD_FAULTS], ids=[row[0] for row in FIELD_FAULTS])
def test_config_fields_a_spec_cannot_honour_are_refused_by_name(tmp_path, config, lines, fragment):
    from model_specs.calibration.spec import TINY_SPEC as CALIBRATION
    from model_specs.centerpoint.spec import TINY_SPEC as CENTERPOINT
    from model_specs.yolox.spec import TINY_SPEC as YOLOX

    for base in CONFIGS.iterdir():
        (tmp_path / base.name).write_text(base.read_text())
    (tmp_path / config).write_text((CONFIGS / config).read_text() + "\n" + lines + "\n")
    spec = {CP_TINY_CONFIG: CENTERPOINT, YOLOX_TINY_CONFIG: YOLOX, CAL_TINY_CONFIG: CALIBRATION}[config]
    with pytest.raises(SpecError, match="--awml-config") as info:
        spec.configure(tmp_path / config)
    assert fragment in str(info.value)


@pytest.mark.parametrize("names", [("x", "y", "z", "intensity"), ("x", "y", "z", "time_lag", "intensity")])
def test_a_bundle_autoware_would_feed_other_point_columns_is_refused(tmp_path, names):
    """autoware_lidar_centerpoint makes x, y, z, time lag (4) or x, y, z, intensity, time lag (5) from point_feature_size:
    a model trained on other columns would read the wrong ones (AWML's base configs' x, y, z, time lag is fed as is)."""
    import dataclasses

    from model_specs.centerpoint.autoware import AutowareSettings, write_bundle

    with pytest.raises(ArtifactError, match=f"the model takes points as {', '.join(names)}; autoware_lidar_centerpoint feeds"):
        write_bundle(tmp_path / "b", tmp_path / "e.onnx", tmp_path / "h.onnx", dataclasses.replace(TINY, point_feature_names=names),
                     AutowareSettings())
# -- nothing written, followed or deleted outside the artifacts, golden and report folders ------------------
def _outside(tmp_path: Path) -> Path:
    """A folder outside every root a test gives the plugin, holding a file that must survive."""
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "precious.txt").write_text("precious")
    (outside / "precious.txt").write_text("precious")
    return outside


def _lock_owner_link(root: Path, outside: Path) -> None:
    with held(root / "x.lock", "building s/c/onnx", root=root):
        pass
    (root / "x.lock.owner").symlink_to(outside / "precious.txt")
    with held(root / "x.lock", "building s/c/onnx", root=root):
        pass


def _lock_link(root: Path, outside: Path) -> None:
    (root / "x.lock").symlink_to(outside / "precious.txt")  # opening a lock truncates it
    with held(root / "x.lock", "building s/c/onnx", root=root):
        pass


def _failures_link(root: Path, outside: Path) -> None:
    from pytest_awml import forensics

    (root / "failures").symlink_to(outside)
    forensics.write_failure(root, "awml::test_parity[keep]", inputs=[], reference=[], outputs=[], reference_name="r",
                            test_name="t", tolerances={}, onnx_path=None)


def _failure_folder_link(root: Path, outside: Path) -> None:
    from pytest_awml import forensics

    (root / "failures").mkdir()
    (root / "failures" / "test_parity_keep").symlink_to(outside / "keep")
    forensics.write_failure(root, "awml::test_parity[keep]", inputs=[], reference=[], outputs=[], reference_name="r",
                            test_name="t", tolerances={}, onnx_path=None)


def _key_folder_link(root: Path, outside: Path) -> None:
    from pytest_awml.artifacts import content_key

    (root / "s" / "c").mkdir(parents=True)
    (root / "s" / "c" / content_key({"k": 1, "format": "onnx"})).symlink_to(outside / "keep")
    ArtifactStore(root).get_or_build(spec="s", component="c", format="onnx", filename="precious.txt", key_parts={"k": 1},
                                     build=_tiny_onnx)


def _golden_file_link(root: Path, outside: Path) -> None:
    (root / "s").mkdir()
    (root / "s" / "c.json").symlink_to(outside / "precious.txt")
    GoldenStore(root).write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}], {"seed": 0})


def _golden_folder_link(root: Path, outside: Path) -> None:
    (root / "s").symlink_to(outside / "keep")
    GoldenStore(root).write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}], {"seed": 0})


def _history_link(root: Path, outside: Path) -> None:
    (root / "history.jsonl").symlink_to(outside / "precious.txt")  # appended in place
    GoldenStore(root).append_history([{"test_id": "t", "output": "y", "max_abs": 0.0}])


def _report_folder_link(root: Path, outside: Path) -> None:
    from pytest_awml.paths import write_atomic as write

    (root / "sub").symlink_to(outside / "keep")
    write(root / "sub" / "precious.txt", b"overwritten", root=root)


LINK_FAULTS = [
    # (id, what plants a link inside the root and writes there, the link named in the message)
    ("lock owner file", _lock_owner_link, "x.lock.owner"),
    ("lock file", _lock_link, "x.lock"),
    ("failures folder", _failures_link, "failures"),
    ("one failure's folder", _failure_folder_link, "failures/test_parity_keep"),
    ("artifact key folder", _key_folder_link, "s/c/"),
    ("golden metadata", _golden_file_link, "s/c.json"),
    ("golden spec folder", _golden_folder_link, "s"),
    ("error history", _history_link, "history.jsonl"),
    ("a folder under a root", _report_folder_link, "sub"),
]


@pytest.mark.parametrize("plant, name", [row[1:] for row in LINK_FAULTS], ids=[row[0] for row in LINK_FAULTS])
def test_a_symbolic_link_inside_a_root_is_refused_not_followed(tmp_path, plant, name):
    outside, root = _outside(tmp_path), tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArtifactError, match="is a symbolic link .*: pytest-awml writes, truncates and deletes nothing through a link") as info:
        plant(root, outside)
    assert f"{root}/{name}" in str(info.value) and "Remove the link (rm " in str(info.value)
    assert (outside / "precious.txt").read_text() == "precious"
    assert [p.name for p in (outside / "keep").iterdir()] == ["precious.txt"]
    assert (outside / "keep" / "precious.txt").read_text() == "precious"


def test_a_failure_folder_that_cannot_be_written_does_not_hide_the_parity_result(tmp_path):
    """A symbolic link for ``failures/`` (or a full disk) used to end the test in an OSError: the parity
    verdict, the finding, was lost. Now the verdict stands and says why there is no failure folder."""
    import types

    import toy
    from pytest_awml import parity_gate
    from pytest_awml.cases import Case
    from pytest_awml.compare import compare_outputs
    from pytest_awml.errors import ToleranceExceeded
    from pytest_awml.limits import Tolerance
    from pytest_awml.records import ParityRecord, RecordIds
    from pytest_awml.workspace import Workspace

    outside, golden = _outside(tmp_path), tmp_path / "golden"
    plan = toy.plan(tmp_path, golden=golden)
    plan.options.artifacts.mkdir()
    golden.mkdir()
    (plan.options.artifacts / "failures").symlink_to(outside)
    (golden / "history.jsonl").symlink_to(outside / "precious.txt")  # the error history is appended before the verdict
    workspace = Workspace(plan, ArtifactStore(plan.options.artifacts))
    inputs, reference = [{"x": np.ones((2, 3), np.float32)}], [{"y": np.arange(4, dtype=np.float32).reshape(2, 2)}]
    outputs = [{"y": reference[0]["y"] + 1}]
    tolerances = {"y": Tolerance(0.1)}
    request = types.SimpleNamespace(node=types.SimpleNamespace(user_properties=[], nodeid="awml::test_parity[keep]"))
    case = Case(toy.SPEC, toy.SPEC.components[0], CPU_FP32)
    ids = RecordIds(test_id="awml::test_parity[keep]", spec=toy.SPEC.name, component=case.component.name)
    with pytest.raises(ToleranceExceeded) as info:
        parity_gate.gate(request, workspace, case.spec, case.component, case.target, [ParityRecord(ids=ids, comparison=c) for c in compare_outputs(reference, outputs, tolerances)],
                    parity_gate.Evidence(inputs, reference, outputs, "pytorch-cpu-fp32", "t", tolerances))
    message = str(info.value)
    assert message.startswith("t differs from pytorch-cpu-fp32") and "y: FAILED max_abs=1" in message
    assert f"No failure folder: {plan.options.artifacts}/failures is a symbolic link" in message
    assert f"The error history was not updated: {golden}/history.jsonl is a symbolic link" in message
    with pytest.raises(ArtifactError, match="t is within tolerance of pytorch-cpu-fp32.\nThe error history was not updated"):
        parity_gate.gate(request, workspace, case.spec, case.component, case.target, [ParityRecord(ids=ids, comparison=c) for c in compare_outputs(reference, reference, tolerances)],
                    parity_gate.Evidence(inputs, reference, reference, "pytorch-cpu-fp32", "t", tolerances))
    assert [p.name for p in (outside / "keep").iterdir()] == ["precious.txt"] and (outside / "precious.txt").read_text() == "precious"


# -- a full disk: one error naming the folder and what was being written; what was there stays ---------------
def _full_disk(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def _golden_pair(root: Path):
    GoldenStore(root).write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.full(2, 2.0, np.float32)}], {"seed": 1})


def _stored_file(root: Path):
    def build(path: Path) -> None:
        path.write_bytes(b"new")

    ArtifactStore(root).get_or_build(spec="s", component="c", format="f", filename="c.bin", key_parts={"k": 2}, build=build)


def _builder_out_of_space(root: Path):
    ArtifactStore(root).get_or_build(spec="s", component="c", format="f", filename="c.bin", key_parts={"k": 3}, build=_full_disk)


def _failure_folder(root: Path):
    from pytest_awml import forensics

    forensics.write_failure(root, "awml::test_parity[x]", inputs=[{"x": np.ones(2)}], reference=[], outputs=[],
                            reference_name="r", test_name="t", tolerances={}, onnx_path=None)


FULL_DISK_FAULTS = [
    # (id, the write that meets a full disk, what the error names)
    ("golden outputs", _golden_pair, "cannot write the golden outputs of s/c in {root}/s: No space left on device: free space there"),
    ("artifact manifest", _stored_file, "cannot write manifest.json in {root}/s/c/"),
    ("a builder's file", _builder_out_of_space, "cannot write s/c/f in {root}/s/c/"),
    ("error history", lambda root: GoldenStore(root).append_history([{"test_id": "t"}]), "cannot write the error history in {root}"),
    ("failure folder", _failure_folder, "cannot write inputs.npz in {root}/failures/test_parity_x: No space left"),
]


@pytest.mark.parametrize("write, fragment", [row[1:] for row in FULL_DISK_FAULTS], ids=[row[0] for row in FULL_DISK_FAULTS])
def test_a_full_disk_names_the_folder_and_leaves_what_was_there(tmp_path, monkeypatch, write, fragment):
    import builtins

    from pytest_awml import paths

    store = ArtifactStore(tmp_path)
    before = store.get_or_build(spec="s", component="c", format="f", filename="c.bin", key_parts={"k": 1},
                                build=lambda path: path.write_bytes(b"old") and None)
    GoldenStore(tmp_path).write("s", "c", [{"x": np.ones(2, np.float32)}], [{"y": np.ones(2, np.float32)}], {"seed": 0})
    GoldenStore(tmp_path).append_history([{"test_id": "old"}])
    history = (tmp_path / "history.jsonl").read_text()
    real_open = builtins.open
    monkeypatch.setattr(paths.os, "fsync", _full_disk)  # every atomic write fails before its rename
    monkeypatch.setattr(builtins, "open", lambda file, mode="r", *a, **k: _full_disk() if "a" in mode else real_open(file, mode, *a, **k))
    with pytest.raises(ArtifactError) as info:
        write(tmp_path)
    monkeypatch.undo()
    assert fragment.format(root=tmp_path) in str(info.value)
    again = ArtifactStore(tmp_path).get_or_build(spec="s", component="c", format="f", filename="c.bin", key_parts={"k": 1},
                                                 build=lambda path: 1 / 0)
    assert again.reused and again.path.read_bytes() == b"old" and again.sha256 == before.sha256
    golden = GoldenStore(tmp_path).read("s", "c")
    assert golden.meta["seed"] == 0 and golden.outputs[0]["y"].tolist() == [1.0, 1.0]
    assert (tmp_path / "history.jsonl").read_text() == history
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no half-written temporary file left


def test_a_report_that_meets_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch, caplog):
    from pytest_awml import paths, run_report

    path = tmp_path / "awml-report.json"
    run_report.write(Results(), path, {"seed": 0}, interrupted=False)
    monkeypatch.setattr(paths.os, "fsync", _full_disk)  # the temporary folder is full too
    with caplog.at_level(logging.WARNING):
        written = run_report.write(Results(), path, {"seed": 1}, interrupted=False)
    assert json.loads(path.read_text())["run"] == {"seed": 0}
    problem = written.notices[-1]
    assert f"could not be written to {path} (cannot write the JSON report in {tmp_path}: No space left on device" in problem
    assert "nor to " in problem and written.path is None


# -- a wait behind a lock says who holds it and for how long, on the terminal, as it waits -------------------
WAITER = """
import subprocess, sys, time
from pathlib import Path

from pytest_awml import locks

HOLD = '''
import sys, time
from pytest_awml.locks import held
with held(sys.argv[1], "building s/c/tensorrt-fp16"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
'''


def test_waits(monkeypatch):
    monkeypatch.setattr(locks, "QUIET_WAIT_S", 0.3)
    monkeypatch.setattr(locks, "NOTE_EVERY_S", 0.3)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(Path("x.lock").resolve()), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\\n"
    with locks.held(Path("x.lock"), "building s/c/tensorrt-fp16", timeout_s=30):
        pass
    holder.wait()
"""


@pytest.mark.parametrize("extra", [[], ["-n", "1"]], ids=["controller", "xdist worker"])
def test_a_lock_wait_is_shown_as_it_happens_without_s(pytester, monkeypatch, capfd, extra):
    """Without -s. On the controller the note goes through pytest's terminal writer; an xdist worker
    writes it to its stderr, which is the controller's (read here from this process's fd 2)."""
    import platform

    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_wait=WAITER)
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec", "centerpoint-tiny", "test_wait.py", "-k", "test_waits", *extra)
    text = result.stdout.str() + result.stderr.str() + capfd.readouterr().err
    assert result.ret == 0, text[-2000:]
    notes = [line for line in text.splitlines() if "pytest-awml: " in line and "waiting for building s/c/tensorrt-fp16" in line]
    assert len(notes) >= 2, text[-2000:]  # every NOTE_EVERY_S, not once
    assert "is held by pid " in notes[0] and f"on host {platform.node()}" in notes[0] and "waited 0 s of 30 s" in notes[0]
    assert "waited 1 s of 30 s" in text
    # "in", not "startswith": the worker's stderr and the controller's output can share a line on a loaded machine
    assert all("pytest-awml: [gw0] " in line for line in notes) is bool(extra)


# -- the Autoware bundle: all or nothing, and a hand-edited file is not overwritten ------------------------
@pytest.fixture
def graphs(tmp_path) -> Path:
    """Two graphs with the inputs, outputs and metadata the bundle's checks read (no nodes: these rows
    are about how the bundle's files are written, and exporting the real ones takes seconds)."""
    from model_specs.centerpoint import autoware_rules as rules
    from model_specs.centerpoint.autoware import manifest

    model = manifest(TINY, AutowareSettings())["/**"]["ros__parameters"]["model_params"]
    pcr, voxel, factor = model["point_cloud_range"], model["voxel_size"], model["downsample_factor"]
    nx, ny = int((pcr[3] - pcr[0]) / voxel[0]), int((pcr[4] - pcr[1]) / voxel[1])
    channels = {"heatmap": len(model["class_names"]), **rules.HEAD_CHANNELS}

    def graph(path: Path, inputs, outputs, metadata) -> None:
        info = helper.make_tensor_value_info
        body = helper.make_graph([], path.stem, [info(n, TensorProto.FLOAT, s) for n, s in inputs], [info(n, TensorProto.FLOAT, s) for n, s in outputs])
        model_proto = helper.make_model(body)
        helper.set_model_props(model_proto, metadata)
        onnx.save(model_proto, str(path))

    graph(tmp_path / rules.ENCODER_ONNX, [("voxels", ["v", rules.MAX_POINTS_PER_VOXEL, model["encoder_in_feature_size"]])],
          [("features", ["v", 1, rules.ENCODER_OUT_FEATURES])], {})
    graph(tmp_path / rules.HEAD_ONNX, [("canvas", [1, rules.ENCODER_OUT_FEATURES, ny, nx])],
          [(n, [1, channels[n], ny // factor, nx // factor]) for n in rules.HEAD_OUTPUTS], {"rot_y_axis_reference": "true"})
    return tmp_path


def _write_bundle(graphs: Path, folder: Path, settings=None, schema_path=None) -> list[Path]:
    from model_specs.centerpoint import autoware_rules as rules
    from model_specs.centerpoint.autoware import write_bundle

    return write_bundle(folder, graphs / rules.ENCODER_ONNX, graphs / rules.HEAD_ONNX, TINY, settings or AutowareSettings(), schema_path)


def _fp32_only(tmp_path: Path) -> Path:
    schema = {"properties": {"/**": {"properties": {"ros__parameters": {"properties": {"trt_precision": {"enum": ["fp32"]}}}}}}}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    return tmp_path / "schema.json"


BUNDLE_FAULTS = [
    # (id, keyword arguments of the failing write, message fragment)
    ("breaks the schema", lambda tmp: {"schema_path": _fp32_only(tmp)}, "the bundle's manifest breaks"),
    ("breaks Autoware's rules", lambda tmp: {"settings": AutowareSettings(trt_precision="fp64")}, "would not load in autoware_lidar_centerpoint"),
]


@pytest.mark.parametrize("first", [False, True], ids=["fresh folder", "over a previous bundle"])
@pytest.mark.parametrize("make, fragment", [row[1:] for row in BUNDLE_FAULTS], ids=[row[0] for row in BUNDLE_FAULTS])
def test_a_bundle_that_fails_its_checks_is_not_left_looking_complete(graphs, tmp_path, make, fragment, first):
    folder = tmp_path / "out" / "centerpoint-tiny"
    if first:
        _write_bundle(graphs, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()} if first else {}
    with pytest.raises(ArtifactError, match=fragment) as info:
        _write_bundle(graphs, folder, **make(tmp_path))
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # nothing of the failed bundle; the previous one byte for byte
    assert ("the bundle a previous run wrote there is unchanged" if first else "the folder holds no bundle") in str(info.value)


def test_a_hand_edited_manifest_is_not_overwritten(graphs, tmp_path):
    from model_specs.centerpoint import autoware_rules as rules

    folder = tmp_path / "centerpoint-tiny"
    _write_bundle(graphs, folder)
    _write_bundle(graphs, folder)  # what the plugin wrote is replaced without a word
    edited = (folder / rules.MANIFEST).read_text().replace("0.35", "0.4")
    (folder / rules.MANIFEST).write_text(edited)
    with pytest.raises(ArtifactError, match=f"{folder / rules.MANIFEST} changed since pytest-awml wrote it .*none was written. Move it away"):
        _write_bundle(graphs, folder)
    assert (folder / rules.MANIFEST).read_text() == edited
    (folder / rules.MANIFEST).rename(folder / "mine.yaml")
    assert [p.name for p in _write_bundle(graphs, folder)][-1] == rules.MANIFEST


# -- golden updates: all or nothing ----------------------------------------------------------------------
def test_a_golden_update_with_one_refused_component_writes_none(tmp_path):
    """A checkpoint whose head gives NaN: the encoder's outputs are finite, and still not written
    (its update runs first); the whole set is refused, naming the component that holds NaN."""
    import dataclasses
    import types

    import toy
    from pytest_awml import golden_write
    from pytest_awml.cases import Case
    from pytest_awml.workspace import Workspace

    def nan_head(checkpoint, seed):
        model = toy.build_model(checkpoint, seed)
        with torch.no_grad():
            model.head.weight.fill_(float("nan"))
        return model

    spec = dataclasses.replace(toy.SPEC, build_model=nan_head)
    golden = tmp_path / "golden"
    plan = toy.plan(tmp_path, specs=(spec,), golden=golden, update_golden=True)
    workspace = Workspace(plan, ArtifactStore(plan.options.artifacts))
    request = types.SimpleNamespace(node=types.SimpleNamespace(user_properties=[], nodeid="awml::test_drift[toy/enc]"))
    with pytest.raises(ArtifactError, match="an update is all or nothing, and head hold NaN or Inf \\(head: output z of sample 0"):
        golden_write.write(request, workspace, GoldenStore(golden), Case(spec, spec.components[0]), {"y": toy.FP32["fp32"]["*"]})
    assert not list(golden.rglob("*.npz")) and not list(golden.rglob("*.json"))
# -- ConvNeXt_PC in a training config: what the spec cannot compute is refused by name -------------------
FAMILY_CONFIGS = Path(__file__).parents[1] / "model_specs" / "centerpoint" / "configs"
CONVNEXT_FAULTS = [
    # (changes to the tiny ConvNeXtPC config's pts_backbone, message fragment)
    (dict(gap_before_final_norm=True), "pts_backbone: not supported: gap_before_final_norm=True"),
    (dict(first_downsample=0), "first_downsample=0"),
    (dict(large_arch=dict(stages=[3], large_kernel_sizes=[31])), "large_arch="),
    (dict(linear_pw_conv=False), "linear_pw_conv=False"),
    (dict(norm_cfg=dict(type="BN")), "norm_cfg type 'BN' (implemented: LN2d)"),
    (dict(act_cfg=dict(type="ReLU")), "act_cfg {'type': 'ReLU'} (implemented: exact GELU)"),
    (dict(use_grn=True), "pts_backbone.use_grn: not read by this spec"),
    (dict(in_channels=64), "pts_backbone.in_channels is 64, but pts_voxel_encoder.feat_channels[-1] makes it 32"),
    (dict(depths=[3, 2, 1]), "must have one entry per stage"),
    (dict(out_indices=[2, 3, 5]), "out_indices [2, 3, 5] must name distinct stages of the 5 configured"),
    (dict(out_indices=[2, 2, 4]), "out_indices [2, 2, 4] must name distinct stages"),
]


@pytest.mark.parametrize("change, fragment", CONVNEXT_FAULTS, ids=[f"{next(iter(c))}{i}" for i, (c, _) in enumerate(CONVNEXT_FAULTS)])
def test_a_convnext_pc_the_spec_cannot_compute_is_refused_by_name(change, fragment):
    from model_specs.centerpoint.mmconfig import to_centerpoint

    config = read_config(FAMILY_CONFIGS / "centerpoint_convnextpc_tiny.py")
    with pytest.raises(SpecError, match="--awml-config") as info:
        to_centerpoint(config.with_model(pts_backbone=change), TINY)
    assert fragment in str(info.value)


def test_a_convnext_pc_without_depths_is_refused_by_name():
    from model_specs.centerpoint.mmconfig import to_centerpoint

    config = read_config(FAMILY_CONFIGS / "centerpoint_convnextpc_tiny.py")
    backbone = {k: v for k, v in config.values["model"]["pts_backbone"].items() if k != "depths"}
    with pytest.raises(SpecError, match=r"pts_backbone.depths is not set \(the upstream class has no default for it\)"):
        to_centerpoint(config.with_model(pts_backbone={**backbone, "_delete_": True}), TINY)
# -- StreamPETR in a training config: what the spec cannot compute is refused by name ----------------------
STREAMPETR_FAULTS = [
    # (changes merged into the model section of the project-written resnet50_480x640 config, message fragment)
    ({"img_backbone": {"depth": 152}}, "ResNet depth 152"),
    ({"pts_bbox_head": {"num_classes": 4}}, "pts_bbox_head.num_classes is 4, but len(class_names) makes it 5"),
    ({"pts_bbox_head": {"transformer": {"decoder": {"transformerlayers": {"operation_order": ("norm", "self_attn")}}}}}, "operation_order"),
    ({"pts_bbox_head": {"unknown_key": 1}}, "pts_bbox_head.unknown_key: not read by this spec"),
    ({"pts_bbox_head": {"embed_dims": 128}}, "embed_dims [128, 256], heads [8] (AWML's MLN is 256 wide)"),
    ({"img_neck": {"num_outs": 4}}, "extra levels"),
    ({"img_neck": {"in_channels": [512, 1024]}}, "img_neck.in_channels is [512, 1024], but ResNet-50's out_indices makes it [1024, 2048]"),
    ({"img_backbone": {"out_indices": (1, 3)}, "img_neck": {"in_channels": [512, 2048]}},
     "stride is 16, but the neck's first level (out_indices (1, 3)) makes it 8"),
    ({"pts_bbox_head": {"type": "PETRHeadDN"}}, "pts_bbox_head: not supported: PETRHeadDN"),
    # the decode (pts_bbox_head.bbox_coder, AWML's NMSFreeCoder): read, or refused by name
    ({"pts_bbox_head": {"bbox_coder": {"type": "mmdet.NMSFreeBEVCoder"}}}, "bbox_coder: not supported: NMSFreeBEVCoder"),
    ({"pts_bbox_head": {"bbox_coder": {"code_size": 10}}}, "pts_bbox_head.bbox_coder.code_size: not read by this spec"),
    ({"pts_bbox_head": {"bbox_coder": {"num_classes": 10}}}, "pts_bbox_head.bbox_coder.num_classes is 10, but len(class_names) makes it 5"),
    ({"pts_bbox_head": {"bbox_coder": {"post_center_range": None}}}, "post_center_range None (AWML's NMSFreeCoder raises"),
    ({"pts_bbox_head": {"bbox_coder": {"max_num": 5000}}}, "pts_bbox_head.bbox_coder.max_num 5000 exceeds the last decoder layer's 900 queries"),
    ({"pts_bbox_head": {"bbox_coder": {"post_center_range": [-61.2, -61.2, -10.0, 61.2, 61.2]}}},
     "pts_bbox_head.bbox_coder.post_center_range has 5 numbers, 6 expected"),
    ({"pts_bbox_head": {"position_range": [-61.2, -61.2, 61.2, 61.2]}}, "pts_bbox_head.position_range has 4 numbers, 6 expected"),
]


def _merged(into: dict, change: dict) -> dict:
    return {**into, **{k: _merged(into.get(k, {}), v) if isinstance(v, dict) else v for k, v in change.items()}}


@pytest.mark.parametrize("change, fragment", STREAMPETR_FAULTS, ids=[f"streampetr{i}" for i in range(len(STREAMPETR_FAULTS))])
def test_a_streampetr_the_spec_cannot_compute_is_refused_by_name(change, fragment):
    from model_specs.streampetr.config import FULL
    from model_specs.streampetr.mmconfig import to_streampetr

    config = read_config(CONFIGS / "streampetr_resnet50_480x640.py")
    changed = dataclasses.replace(config, values={**config.values, "model": _merged(config.values["model"], change)})
    with pytest.raises(SpecError, match="--awml-config") as info:
        to_streampetr(changed, FULL)
    assert fragment in str(info.value)


# -- a spec's pipelines: what a stage times and which pipeline a test asks for ------------------------------
def _toy_with(**pipeline_changes):
    import dataclasses

    import toy

    return dataclasses.replace(toy.SPEC, pipeline=dataclasses.replace(toy.SPEC.pipeline, **pipeline_changes))


def test_a_pipeline_the_spec_does_not_declare_is_a_spec_error():
    import toy
    from pytest_awml.pipeline import PipelineName

    with pytest.raises(SpecError, match=r"field bundle_pipeline: is None, and a test asked for it.*declare bundle_pipeline="):
        toy.SPEC.pipeline_named(PipelineName.BUNDLE)


def test_a_pipeline_whose_stages_feed_other_inputs_on_every_pass_is_a_backend_error(tmp_path):
    """Pipeline parity resolves a frame's missing inferences between passes: a pipeline that feeds a component other
    inputs each time it runs the same sample would never end; it fails naming the component."""
    import toy
    from pytest_awml.device import REFERENCE
    from pytest_awml.pipeline import PipelineResult, StageClock
    from pytest_awml import pipeline_outputs
    from pytest_awml.workspace import Workspace

    class Drifting(toy.ToyPipeline):
        calls = 0

        def __call__(self, sample) -> PipelineResult:
            Drifting.calls += 1
            out = self.runners["enc"].run({"x": sample + np.float32(Drifting.calls)})["y"]
            return PipelineResult(out, StageClock().stages_ms)

    spec = _toy_with(build=lambda model, runners: Drifting(runners))
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(tmp_path / "artifacts"))
    with pytest.raises(BackendError, match="fed enc other inputs when it ran the same sample again: .* not deterministic"):
        pipeline_outputs.outputs(workspace, spec, REFERENCE)
    workspace.close()


def _oracle_root_missing(tmp_path, monkeypatch):
    from model_specs.centerpoint.autoware_oracle import build

    monkeypatch.delenv(build.ROOT_VARIABLE, raising=False)
    build.package_root()


def _oracle_root_without_kernels(tmp_path, monkeypatch):
    from model_specs.centerpoint.autoware_oracle import build

    (tmp_path / "perception" / "autoware_lidar_centerpoint").mkdir(parents=True)
    build.package_root(tmp_path)


def _oracle_fractional_intensity(tmp_path, monkeypatch):
    from model_specs.centerpoint.autoware_oracle.oracle import as_node_points

    as_node_points(np.array([[1.0, 2.0, 0.0, 12.5]], np.float32))


def _oracle_scene_changed(tmp_path, monkeypatch):
    from model_specs.centerpoint.autoware_oracle import recording
    from model_specs.centerpoint.autoware_oracle.compare import Voxels
    from model_specs.centerpoint.spec import TINY_SPEC

    cfg = TINY_SPEC.params["model"]
    empty = Voxels(np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros((0, 32, cfg.decorated_features), np.float32))
    heads = {k: np.zeros((1, 1, 1, 1), np.float32) for k in recording.HEADS}
    recording.save(tmp_path, "t", {"synthetic": {"count": 1, "seed": 0}, "frames": [{"name": "synthetic-0-0", "digest": "0" * 64}]},
                   recording.pack("synthetic-0-0", empty, heads, np.zeros((0, 12), np.float32), None))
    recording.load(tmp_path, "t", cfg, TINY_SPEC.make_samples)


ORACLE_FAULTS = [  # the Autoware oracle's bad inputs (docs/autoware-oracle.md)
    ("AUTOWARE_ROOT unset", _oracle_root_missing, BackendUnavailable, "$AUTOWARE_ROOT is not set"),
    ("AUTOWARE_ROOT without the kernels", _oracle_root_without_kernels, BackendUnavailable, "point it at a checkout of autoware_universe"),
    ("intensity the node's uint8 cannot hold", _oracle_fractional_intensity, DataError, "holds intensity as uint8"),
    ("a synthetic frame that is not the recorded one", _oracle_scene_changed, DataError, "re-record with tools/record_autoware.py"),
]


@pytest.mark.parametrize(("make", "error", "fragment"), [row[1:] for row in ORACLE_FAULTS], ids=[row[0] for row in ORACLE_FAULTS])
def test_the_autoware_oracle_s_bad_inputs_say_what_to_do(tmp_path, monkeypatch, make, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        make(tmp_path, monkeypatch)


# -- FRNet's labelled scans and the classifiers' annotation files: DataError naming the file ------------------
def _frnet_scan(root: Path, labels: bytes | None, points: np.ndarray | None = None) -> Path:
    points = np.arange(40, dtype=np.float32).reshape(8, 5) + 1 if points is None else points
    points.tofile(root / "scan.bin")
    if labels is not None:
        (root / "scan.label").write_bytes(labels)
    return root / "scan.bin"


NAN_ROW = np.arange(40, dtype=np.float32).reshape(8, 5) + 1
NAN_ROW[3, 1] = np.nan
FRNET_DATA_FAULTS = [
    # (id, label file content, points, message fragment)
    ("labels of another scan", np.zeros(7, "<u4").tobytes(), None, "28 bytes, but its scan has 8 points"),
    ("a label past the classes", np.array([0, 5, 99, 0, 0, 0, 0, 0], "<u4").tobytes(), None, "label 99 at row 2 is not one of the spec's 27"),
    ("a non-finite point in a labelled scan", np.zeros(8, "<u4").tobytes(), NAN_ROW, "1 point(s) with non-finite coordinates (first at row 3)"),
]


@pytest.mark.parametrize("labels, points, fragment", [row[1:] for row in FRNET_DATA_FAULTS], ids=[row[0] for row in FRNET_DATA_FAULTS])
def test_a_bad_labelled_scan_is_a_data_error_naming_the_file(tmp_path, labels, points, fragment):
    from model_specs.frnet.spec import TINY_SPEC as FRNET_TINY

    path = _frnet_scan(tmp_path, labels, points)
    with pytest.raises(DataError, match=re.escape(fragment)) as info:
        FRNET_TINY.load_data(path, {})
    assert str(tmp_path) in str(info.value)


def _tlr_info(root: Path, **changes) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "frame.png")
    info = {"metainfo": {"classes": ["crosswalk_red", "crosswalk_green", "crosswalk_unknown"]},
            "data_list": [{"img_path": "frame.png", "instances": [{"bbox": [5.5, 4.2, 20.9, 30.1], "bbox_label": 1}]}]}
    for key, value in changes.items():
        if key == "instance":
            info["data_list"][0]["instances"][0].update(value)
        else:
            info[key] = value
    path = root / "tlr_infos_test.json"
    path.write_text(json.dumps(info) if "raw" not in changes else changes["raw"])
    return path


TLR_DATA_FAULTS = [
    # (id, changes to the annotation file, data options, message fragment)
    ("not JSON", {"raw": "{not json"}, {}, "not a JSON annotation file"),
    ("no data_list", {"data_list": None}, {}, "no data_list: expected AWML's classification info"),
    ("the other classifier's classes", {"metainfo": {"classes": ["green", "red"]}}, {}, "its classes ['green', 'red'] are not the spec's"),
    ("an image that is not there", {"data_list": [{"img_path": "missing.png", "instances": []}]}, {}, "missing.png does not exist"),
    ("a box outside the image", {"instance": {"bbox": [70, 50, 90, 60]}}, {}, "holds no pixel of the 60 x 40 image"),
    ("a label past the classes", {"instance": {"bbox_label": 3}}, {}, "bbox_label 3 is not one of the spec's 3 classes"),
    ("an instance without a box", {"instance": {"bbox": None}}, {}, "needs bbox [x1, y1, x2, y2]"),
    ("no light in any frame", {"data_list": [{"img_path": "frame.png", "instances": []}]}, {}, "no entry of its data_list has an instance"),
    ("typo in a data option", {}, {"images": "x"}, "data option(s) images unknown"),
]


@pytest.mark.parametrize("changes, options, fragment", [row[1:] for row in TLR_DATA_FAULTS], ids=[row[0] for row in TLR_DATA_FAULTS])
def test_a_bad_traffic_light_annotation_is_a_data_error_naming_it(tmp_path, changes, options, fragment):
    from model_specs.mobilenetv2.spec import PEDESTRIAN_TINY_SPEC

    path = _tlr_info(tmp_path, **changes)
    with pytest.raises(DataError, match=re.escape(fragment)) as info:
        PEDESTRIAN_TINY_SPEC.load_data(path, options)
    assert str(tmp_path) in str(info.value) or "option" in str(info.value)


# -- the task metric of a trained tiny model: an export that changes the labels fails test_metric ----------------
EXPORT_LABEL_FAULTS = [
    # (id, the spec module and name, the metric the failure names)
    ("frnet-tiny classes reversed in the graph", "model_specs.frnet.spec", "TINY_SPEC", "mIoU"),
    ("mobilenetv2-pedestrian-tiny classes reversed in the graph", "model_specs.mobilenetv2.spec", "PEDESTRIAN_TINY_SPEC", "top1_accuracy"),
]


@pytest.mark.parametrize("module, name, metric", [row[1:] for row in EXPORT_LABEL_FAULTS], ids=[row[0] for row in EXPORT_LABEL_FAULTS])
def test_an_export_that_changes_the_labels_fails_the_metric_gate(run_awml, pytester, module, name, metric):
    """The bundled trained weights make the metric mean something (seeded ones scored 0 against 0, which is not judged):
    a graph whose class order the export reverses (as a wrong symbolic or a reordered head would) moves the metric far
    past the spec's fp32 delta, and test_metric fails saying by how much."""
    pytester.makepyfile(reversed_spec=f"""
import dataclasses
import torch
from {module} import {name} as BASE


class ReversedInExport(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *inputs):
        out = self.inner(*inputs)
        return out.flip(-1) if torch.onnx.is_in_onnx_export() else out


component = dataclasses.replace(BASE.components[0], extract=lambda model: ReversedInExport(model))
SPEC = dataclasses.replace(BASE, name=BASE.name + "-reversed", components=(component,))
""")
    run = run_awml("--awml-spec=reversed_spec.py", "-k", "test_metric")
    run.result.assert_outcomes(failed=1)
    assert f"{metric} delta" in run.text
    (record,) = run.report["metrics"]
    assert record.get("not_judged") is None and not record["passed"] and record["reference_value"] - record["value"] > 0.2


# -- StreamPETR's T4dataset info file (--awml-data): DataError naming the file and the sample ------------------
def _first(change):
    """A change to the first sample of the scene read (tests/t4info.py puts it first in data_list)."""
    return lambda info: change(info["data_list"][0])


def _drop_left(entry):
    del entry["images"]["CAM_FRONT_LEFT"]


def _unpicklable() -> bytes:
    import pickle

    return pickle.dumps({"data_list": [Path("/x")]})


STREAMPETR_DATA_FAULTS = [
    # (id, change to the info, raw bytes of the file, data options, message fragment)
    ("not a pickle", None, b"not a pickle", {}, "not a pickled info file"),
    ("a pickled object that is not data", None, _unpicklable(), {}, "holds a pickled pathlib"),
    ("no data_list", lambda info: info.pop("data_list"), None, {}, "no data_list: expected mmdet3d's v2 info format"),
    ("a class the spec lacks", lambda info: info["metainfo"].update(classes=["car", "trailer"]), None, {},
     "class(es) 'trailer' of its metainfo.classes"),
    ("a camera of the order missing", _first(_drop_left), None, {}, "has no image for CAM_FRONT_LEFT"),
    ("a sample without images", _first(lambda e: e.update(images={})), None, {}, "has no image for CAM_FRONT"),
    ("an image that is not there", _first(lambda e: e["images"]["CAM_FRONT"].update(img_path="missing.png")), None, {},
     "missing.png does not exist (pass --awml-data-option data_root=DIR"),
    ("cam2img not 3 x 3", _first(lambda e: e["images"]["CAM_FRONT"].update(cam2img=[[1.0, 0.0], [0.0, 1.0]])), None, {},
     "CAM_FRONT's cam2img is not a 3 x 3 matrix"),
    ("a label past the classes", _first(lambda e: e["instances"][0].update(bbox_label_3d=7)), None, {},
     "bbox_label_3d 7 indexes none of the info's 5 classes"),
    ("a scene that is not there", None, None, {"scene": "scene-z"}, "no scene 'scene-z' (scene_token or scene_name)"),
    ("a sequence of one sample", None, None, {"first": "2"}, "a sequence needs two"),
    ("frames not a number", None, None, {"frames": "many"}, "frames='many' must be an integer >= 2"),
    ("typo in a data option", None, None, {"scene_name": "x"}, "data option(s) scene_name unknown"),
]


@pytest.mark.parametrize("mutate, raw, options, fragment", [row[1:] for row in STREAMPETR_DATA_FAULTS],
                         ids=[row[0] for row in STREAMPETR_DATA_FAULTS])
def test_a_bad_streampetr_info_file_is_a_data_error_naming_it(tmp_path, mutate, raw, options, fragment):
    import t4info
    from model_specs.streampetr.spec import TINY_SPEC as STREAMPETR_TINY

    path = t4info.write(tmp_path, mutate, raw)
    with pytest.raises(DataError, match=re.escape(fragment)) as info:
        STREAMPETR_TINY.load_data(path, options)
    assert str(tmp_path) in str(info.value) or "option" in str(info.value)
