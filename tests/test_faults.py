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
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from model_specs.centerpoint import data
from model_specs.centerpoint.config import TINY
from model_specs.mmconfig import MAX_CONFIG_BYTES, read_config
from pytest_awml import report, run_report
from pytest_awml.artifacts import FILE_MODE, ArtifactStore, write_atomic
from pytest_awml.builders.onnx import onnx_problem
from pytest_awml.device import REFERENCE, Device, Precision, Target
from pytest_awml.limits import LatencySettings
from pytest_awml.errors import ArtifactError, BackendError, DataError, SpecError
from pytest_awml.golden import GoldenStore
from pytest_awml.locks import held
from pytest_awml.models import DataWarning
from pytest_awml.records import DataNote, SkippedTest
from pytest_awml.results import Results
from pytest_awml.runners.onnxruntime import OnnxRuntimeRunner
from pytest_awml.runners.pytorch import PyTorchRunner

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
USAGE = pytest.ExitCode.USAGE_ERROR
CPU_FP32 = Target("onnxruntime", Device("cpu"), Precision.FP32)


# -- options and files read at configure time: usage errors (exit 4) before any test --------------
def _files(root: Path) -> dict[str, str]:
    """Bad inputs on disk, made once per test; each value is the path an option is given."""
    (root / "a_file").write_text("x")
    (root / "not_json.json").write_text("{ not json")
    (root / "no_stats.json").write_text(json.dumps({"benchmarks": [{"name": "test_latency[x]", "extra_info": {}}]}))
    (root / "scan.bin").write_bytes(np.zeros((10, 4), np.float32).tobytes())
    (root / "dir").mkdir()
    configs = {"syntax.py": "model = dict(\n", "base.py": "_base_ = ['missing.py']\n", "power.py": "x = 9 ** 9 ** 9\n",
               "repeat.py": "x = 'a' * 10 ** 9\n", "huge.py": "#" * (MAX_CONFIG_BYTES + 1),
               "channels.py": (CONFIGS / "centerpoint_tiny.py").read_text() + "\nmodel['pts_voxel_encoder']['in_channels'] = 'abc'\n"}
    for name, text in configs.items():
        (root / name).write_text(text)
    if (CONFIGS / "centerpoint_tiny.py").exists():  # its _base_ files resolve beside it
        for base in CONFIGS.iterdir():
            if not (root / base.name).exists():
                (root / base.name).write_text(base.read_text())
    # keyed by the name without its suffix: "{scan}" in a row is the path of scan.bin
    return {name.split(".")[0]: str(root / name) for name in ("a_file", "not_json.json", "no_stats.json", "scan.bin", "dir", *configs)}


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
    ("golden folder is a file", ["--awml-golden", "{a_file}"], "--awml-golden {a_file} is a file"),
    ("update golden without a folder", ["--awml-update-golden"], "--awml-update-golden needs --awml-golden DIR"),
    ("lock timeout not a number", ["--awml-lock-timeout", "soon"], "--awml-lock-timeout 'soon' is not a number of seconds"),
    ("negative lock timeout", ["--awml-lock-timeout", "-1"], "--awml-lock-timeout must be a finite number of seconds >= 0"),
    ("baseline not JSON", ["--awml-latency-baseline", "{not_json}"], "is not a readable pytest-benchmark JSON file"),
    ("baseline without stats", ["--awml-latency-baseline", "{no_stats}"], "has no name or no numeric stats.median"),
    ("baseline that does not exist", ["--awml-latency-baseline", "{dir}/none.json"], "--awml-latency-baseline {dir}/none.json does not exist"),
    ("checkpoint that does not exist", ["--awml-checkpoint", "{dir}/none.pt"], "--awml-checkpoint {dir}/none.pt does not exist"),
    ("samples not a number", ["--awml-samples", "many"], "--awml-samples 'many' is not an integer"),
    ("zero samples", ["--awml-samples", "0"], "--awml-samples must be >= 1"),
    ("unknown hypothesis profile", ["--awml-hypothesis-profile", "fast"], "use ci or dev"),
    ("unknown device", ["--awml-device", "gpu"], "use cpu, cuda or cuda:N"),
    ("config with a syntax error", ["--awml-config", "{syntax}"], "syntax error"),
    ("config with a missing base", ["--awml-config", "{base}"], "no such file (named in a _base_ list)"),
    ("config raising a huge power", ["--awml-config", "{power}"], "exponent 387420489 is beyond what a config needs"),
    ("config repeating a string", ["--awml-config", "{repeat}"], "would repeat a sequence past the 65536 items"),
    ("config file too large", ["--awml-config", "{huge}"], "over the 1048576 a training config can be"),
    ("config value of the wrong type", ["--awml-config", "{channels}"], "rebuilding the model from it failed: ValueError"),
    ("spec that is not registered", ["--awml-spec", "centrepoint"], "no spec of that name is registered"),
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
     "malformed PCD header (TYPE.3"),
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
    with pytest.warns(DataWarning):
        workspace.model(spec)
    assert workspace.drain_notes() == [("toy", f"{tmp_path}: 3 points cut")] and workspace.drain_notes() == []
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
    from pytest_awml.artifacts import sha256_file

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
    from pytest_awml.artifacts import sha256_file
    from pytest_awml.workspace import REFERENCE_FORMAT, Workspace

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
    again = workspace.reference(spec, component)
    stored = [a for a in workspace.drain_builds() if a.format == REFERENCE_FORMAT]
    (rebuilt,) = [a for a in stored if not a.reused]
    assert rebuilt.path == path and "its content is refused" in rebuilt.rebuilt_reason
    for old, new in zip(expected, again):
        assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)


def test_onnx_runtime_on_a_corrupt_file_is_an_artifact_error(tmp_path):
    path = tmp_path / "c.onnx"
    path.write_bytes(b"\x08\x07garbage")
    runner = OnnxRuntimeRunner(lambda: path, CPU_FP32, ("y",), ["CPUExecutionProvider"])
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


@pytest.mark.parametrize("changes, field, fragment", [row[1:] for row in STAGE_FAULTS], ids=[row[0] for row in STAGE_FAULTS])
def test_a_bad_stage_declaration_is_a_spec_error_naming_it(changes, field, fragment):
    from pytest_awml.spec import validate

    with pytest.raises(SpecError, match="Fix: map each stage") as info:
        validate(_toy_stages(**changes))
    assert info.value.field == field and fragment in info.value.problem


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
    rows = [
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


# -- the restricted config reader: bounded, and every error a SpecError ------------------------------------
CONFIG_FAULTS = [
    ("x = 2 ** 64\ny = x * x * x * x * x\n", "is over 256 bits"),
    ("x = [1] * 10 ** 12\n", "would repeat a sequence past"),
    ("x = list(range(10 ** 12))\n", "items, over the 65536 a config needs"),
    ("x = [1]\n" + "x = x + x\n" * 20, "has 131072 items"),
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
    with pytest.raises(SpecError, match="--awml-config") as info:
        read_config(path)
    assert fragment in str(info.value)

