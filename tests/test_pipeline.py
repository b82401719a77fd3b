"""CenterPoint's pipeline: decoding, NMS, detection parity, re-entrancy and real point-cloud files."""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest
import torch

from model_specs.centerpoint import data
from model_specs.centerpoint.config import TINY
from model_specs.centerpoint.decode import circle_nms, decode
from model_specs.centerpoint.pipeline import STAGES, CenterPointPipeline, DetectionLimits, compare_detections
from model_specs.centerpoint.scene import Scene, Sweep, translation
from model_specs.centerpoint.voxelize import UploadedSweeps, densify, relative_pose
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.device import REFERENCE
from pytest_awml.errors import DataError
from pytest_awml.runners.base import RunnerSource
from pytest_awml.runners.pytorch import PyTorchBackend

H, W = TINY.head_size


def _heads(peaks):
    """Head tensors with heatmap peaks at (class, y, x) and known regression values."""
    heads = {"heatmap": np.full((1, 5, H, W), -10.0, np.float32), "reg": np.full((1, 2, H, W), 0.5, np.float32),
             "height": np.ones((1, 1, H, W), np.float32), "dim": np.log(np.array([4.0, 2.0, 1.5], np.float32)).reshape(1, 3, 1, 1).repeat(H, 2).repeat(W, 3),
             "rot": np.stack([np.full((H, W), math.sin(0.3)), np.full((H, W), math.cos(0.3))])[None].astype(np.float32),
             "vel": np.zeros((1, 2, H, W), np.float32)}
    for cls, y, x, logit in peaks:
        heads["heatmap"][0, cls, y, x] = logit
    return heads


def test_decode_places_a_peak_in_metres():
    d = decode(_heads([(2, 10, 20, 3.0)]), TINY)
    assert len(d.scores) == 1 and d.labels[0] == 2 and d.scores[0] == pytest.approx(1 / (1 + math.exp(-3.0)))
    x = (20 + 0.5) * TINY.out_size_factor * TINY.voxel_size[0] + TINY.point_cloud_range[0]
    y = (10 + 0.5) * TINY.out_size_factor * TINY.voxel_size[1] + TINY.point_cloud_range[1]
    np.testing.assert_allclose(d.boxes[0, :7], [x, y, 1.0, 4.0, 2.0, 1.5, 0.3], rtol=1e-5)


def test_decode_applies_the_score_threshold():
    threshold_logit = math.log(TINY.score_threshold / (1 - TINY.score_threshold))
    d = decode(_heads([(0, 5, 5, threshold_logit + 0.01), (1, 30, 30, threshold_logit - 0.01)]), TINY)
    assert d.labels.tolist() == [0]


def test_decode_keeps_scores_strictly_above_the_threshold_as_mmdet3d():
    score = float(torch.sigmoid(torch.tensor(2.0)))  # exactly representable as the float32 score decode sees
    at_threshold = dataclasses.replace(TINY, score_threshold=score)
    assert len(decode(_heads([(0, 5, 5, 2.0)]), at_threshold).scores) == 0  # mmdet3d: score > threshold
    assert len(decode(_heads([(0, 5, 5, 2.001)]), at_threshold).scores) == 1


def test_decode_undoes_the_autoware_convention():
    heads = _heads([(0, 5, 5, 2.0)])
    autoware = dict(heads, dim=heads["dim"][:, [1, 0, 2]], rot=np.concatenate([-heads["rot"][:, 1:2], -heads["rot"][:, 0:1]], 1))
    np.testing.assert_allclose(decode(autoware, TINY, rot_y_axis_reference=True).boxes, decode(heads, TINY).boxes, atol=1e-6)


def test_decode_takes_the_top_k_of_the_logits_and_casts_half_heads_after_the_gather():
    """The top-k cells are those of the highest probabilities (sigmoid is increasing), ordered by logit where sigmoid
    rounds two logits to one float32 (past ~17 both are 1.0); a half head decodes as the same values in float32,
    since the cast after the gather is exact; the decoded maps are every cell's."""
    rng = np.random.default_rng(0)
    heads = _heads([(c, int(y), int(x), float(v)) for c, y, x, v in
                    zip(rng.integers(0, 5, 300), rng.integers(0, H, 300), rng.integers(0, W, 300), rng.normal(0, 8, 300).clip(-15, 15))])
    heads["heatmap"][0, 0, 0, 0], heads["heatmap"][0, 0, 0, 1] = 30.0, 20.0  # both sigmoid to 1.0 in float32, the rest below
    d = decode(heads, TINY)
    probabilities = torch.sigmoid(torch.from_numpy(heads["heatmap"][0])).numpy()
    top = np.sort(probabilities.reshape(-1))[::-1][: TINY.max_detections_pre_nms]
    # sigmoid of a few logits against that of the whole map: CPU kernels may round a tail element apart by an ulp
    np.testing.assert_allclose(np.sort(d.candidate_scores)[::-1], top, rtol=1e-6)
    assert d.candidate_cells[:2].tolist() == [[0, 0, 0], [0, 0, 1]] and d.candidate_scores[0] == d.candidate_scores[1] == 1.0
    np.testing.assert_allclose(d.probabilities, probabilities, rtol=1e-6)
    half = {name: value.astype(np.float16) for name, value in heads.items()}
    as_float = decode({name: value.astype(np.float32) for name, value in half.items()}, TINY)
    from_half = decode({name: torch.from_numpy(value) for name, value in half.items()}, TINY)
    for field in ("boxes", "scores", "labels", "candidate_scores", "probabilities", "sizes", "yaws"):
        np.testing.assert_array_equal(getattr(from_half, field), getattr(as_float, field))


def test_circle_nms_compares_the_squared_distance_as_mmdet3d_does():
    centres = torch.tensor([[0.0, 0.0], [0.9, 0.0], [5.0, 0.0], [6.1, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert circle_nms(centres, scores, min_radius=1.0, post_max_size=10).tolist() == [0, 2, 3]  # 0.81 <= 1; 1.21 > 1
    assert circle_nms(centres, scores, min_radius=1.0, post_max_size=1).tolist() == [0]


def test_detection_checks_catch_a_moved_box_and_a_flip():
    threshold_logit = math.log(0.1 / 0.9)
    ref = decode(_heads([(0, 5, 5, 2.0), (1, 40, 40, threshold_logit + 0.02)]), TINY)
    assert all(c.passed for c in compare_detections([ref], [ref], DetectionLimits(), 0.1))
    moved = _heads([(0, 5, 5, 2.0), (1, 40, 40, threshold_logit + 0.02)])
    moved["reg"][0, 0, 5, 5] += 0.2  # 0.16 m in x
    checks = {c.output: c for c in compare_detections([ref], [decode(moved, TINY)], DetectionLimits(), 0.1)}
    assert not checks["boxes.centre_m"].passed and checks["boxes.centre_m"].value == pytest.approx(0.16, rel=1e-3)
    flipped = decode(_heads([(0, 5, 5, 2.0), (1, 40, 40, threshold_logit - 0.02)]), TINY)
    checks = {c.output: c for c in compare_detections([ref], [flipped], DetectionLimits(), 0.1)}
    assert checks["boxes.threshold_flips"].value == 1 and not checks["boxes.threshold_flips"].passed
    assert checks["boxes.unmatched_max_score"].passed  # the lost box scored ~0.1, below 0.3


@pytest.fixture(scope="module")
def reference_pipeline():
    model = TINY_SPEC.build_model(None, 0)
    backend = PyTorchBackend()
    runners = {}
    for comp in TINY_SPEC.components:
        source = RunnerSource(comp.name, comp.input_names, comp.output_names, comp.extract(model), artifact=None)
        runners[comp.name] = backend.create_runner(source, REFERENCE)
    return TINY_SPEC.pipeline.build(model, runners)


def test_pipeline_is_re_entrant(reference_pipeline):
    samples = TINY_SPEC.make_samples(2, 7)
    expected = [reference_pipeline(s).outputs for s in samples]
    got, errors = {}, []

    def work(i):
        try:
            got[i] = reference_pipeline(samples[i])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        np.testing.assert_array_equal(got[i].outputs.boxes, expected[i].boxes)
        assert tuple(got[i].stages_ms) == STAGES and all(v > 0 for v in got[i].stages_ms.values())
    assert got[0].stages_ms is not got[1].stages_ms
    assert isinstance(reference_pipeline, CenterPointPipeline) and not hasattr(reference_pipeline, "stages_ms")


def test_the_relative_pose_is_the_general_inverse_s():
    """A past sweep's move into the current frame, by the rotation's transpose: the general inverse's result within
    float64 rounding, and its very bits for poses that only translate (the synthetic scenes')."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        current, past = (_rigid(rng) for _ in range(2))
        np.testing.assert_allclose(relative_pose(current, past), np.linalg.inv(current) @ past, rtol=0, atol=1e-9)
    current, past = translation(*rng.uniform(-50, 50, 3)), translation(*rng.uniform(-50, 50, 3))
    assert np.array_equal(relative_pose(current, past), np.linalg.inv(current) @ past)
    assert np.array_equal(relative_pose(current, current), np.eye(4))


def test_a_rotated_past_sweep_lands_where_float64_puts_it():
    """A past sweep taken with another heading moves into the current frame within float32 rounding of the exact
    (float64) move: the synthetic scenes only translate, so this is the test that holds the rotation to the math."""
    rng = np.random.default_rng(4)
    scene = TINY_SPEC.make_samples(1, 6)[0]
    cfg = TINY_SPEC.params["model"]
    current, past = _rigid(rng), _rigid(rng)
    sweeps = (dataclasses.replace(scene.sweeps[0], pose=current), dataclasses.replace(scene.sweeps[1], pose=past))
    moved = densify(sweeps, cfg)[len(sweeps[0].points):, :3].numpy()
    points = sweeps[1].points[:, :3].astype(np.float64)
    exact = points @ (np.linalg.inv(current) @ past)[:3, :3].T + (np.linalg.inv(current) @ past)[:3, 3]
    np.testing.assert_allclose(moved, exact, rtol=0, atol=1e-4)  # metres: float32 keeps ~1e-5 at 100 m


def _rigid(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    pose = translation(*rng.uniform(-100, 100, 3))
    pose[:3, :3] = q * np.sign(np.linalg.det(q))
    return pose


def test_a_stream_uploads_each_sweep_once_and_gives_the_points_of_a_fresh_upload():
    """Autoware's densification: a frame's past sweep is the earlier frame's current one, held on the device."""
    first, second = TINY_SPEC.make_samples(2, 11)
    cfg = TINY_SPEC.params["model"]
    later = dataclasses.replace(second, sweeps=(second.sweeps[0], first.sweeps[0]))  # frame 2 looks back at frame 1
    uploaded = UploadedSweeps()
    densify(first.sweeps, cfg, "cpu", uploaded)
    held = uploaded.get(first.sweeps[0])
    np.testing.assert_array_equal(held.numpy(), first.sweeps[0].points[:, :4])
    streamed = densify(later.sweeps, cfg, "cpu", uploaded)
    assert uploaded.get(first.sweeps[0]) is held  # not uploaded again
    assert torch.equal(streamed, densify(later.sweeps, cfg))  # moved into frame 2, exactly as a fresh upload
    assert torch.equal(densify(later.sweeps, cfg, "cpu", uploaded), streamed)  # and again: nothing held was moved
    assert uploaded.get(first.sweeps[1]) is None  # frame 1's past sweep: no frame after it looks back at it


def test_points_of_any_float_layout_go_up_as_the_same_float32_cloud():
    """A sweep's points may be float64, read-only (a memory-mapped file), big-endian or a view of wider rows: the frame
    holds the same float32 x, y, z, intensity whichever way they are copied up."""
    scene = TINY_SPEC.make_samples(1, 5)[0]
    cfg = TINY_SPEC.params["model"]
    points = scene.sweeps[0].points
    wide = np.concatenate([points, np.ones((len(points), 1), np.float32)], axis=1)[:, :4]  # a strided view
    frozen = points.astype(np.float64)
    frozen.flags.writeable = False
    expected = densify(scene.sweeps, cfg)
    for variant in (wide, frozen, points.astype(">f4")):  # the last in big-endian order
        sweeps = (dataclasses.replace(scene.sweeps[0], points=variant), *scene.sweeps[1:])
        assert torch.equal(densify(sweeps, cfg), expected)


def test_no_point_in_range_is_a_clear_error(reference_pipeline):
    far = Scene((Sweep(np.array([[500.0, 0, 0, 1]], np.float32), 0.0, np.eye(4)),), np.zeros((0, 9), np.float32), np.zeros(0, np.int64))
    with pytest.raises(DataError, match="no point of the cloud .* lies in the range"):
        reference_pipeline(far)


def _scene_points():
    """A T4/nuScenes-style scan: x, y, z, intensity and the ring index in column 4."""
    points = TINY_SPEC.make_samples(1, 3)[0].current.points
    return np.column_stack([points, np.arange(len(points)) % 32]).astype(np.float32)


def test_bin_files_of_five_and_four_features(tmp_path):
    points = _scene_points()
    (tmp_path / "a.bin").write_bytes(points.tobytes())
    (scene,) = data.load(tmp_path / "a.bin", {})
    np.testing.assert_array_equal(scene.current.points, points[:, :4])  # the ring index is no model input
    densified = densify(scene.sweeps, TINY).numpy()
    np.testing.assert_array_equal(densified[:, :4], points[:, :4])
    assert not densified[:, 4].any()  # one sweep: time lag 0 everywhere, as Autoware's first frame
    (tmp_path / "k.bin").write_bytes(points[:, :4].copy().tobytes())
    kitti = data.load(tmp_path / "k.bin", {"point_features": "4"})[0].current.points
    np.testing.assert_array_equal(kitti, points[:, :4])


def test_malformed_files_give_clear_errors(tmp_path, caplog):
    (tmp_path / "short.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(DataError, match="28 bytes is not a whole number of float32 points of 5 features"):
        data.load(tmp_path / "short.bin", {})
    (tmp_path / "kitti.bin").write_bytes(np.zeros(8, np.float32).tobytes())
    with pytest.raises(DataError, match="pass --awml-data-option point_features=4"):
        data.load(tmp_path / "kitti.bin", {})
    nan = _scene_points()[:10].copy()
    nan[:3, 0] = np.nan
    (tmp_path / "nan.bin").write_bytes(nan.tobytes())
    assert len(data.load(tmp_path / "nan.bin", {})[0].current.points) == 7 and "dropped 3 points" in caplog.text
    (tmp_path / "allnan.bin").write_bytes(np.full((4, 5), np.nan, np.float32).tobytes())
    with pytest.raises(DataError, match="no point with finite coordinates"):
        data.load(tmp_path / "allnan.bin", {})
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(DataError, match=r"shape \(3, 7\)"):
        data.load(tmp_path / "bad.npy", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no point cloud"):
        data.load(tmp_path / "empty", {})


def _pcd_header(n, data_kind):
    return (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity ring\nSIZE 4 4 4 4 2\nTYPE F F F F U\nCOUNT 1 1 1 1 1\n"
            f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data_kind}\n").encode()


def test_pcd_ascii_and_binary(tmp_path):
    points = _scene_points()[:50]
    rows = "\n".join(" ".join(f"{v:.6f}" for v in p[:4]) + f" {int(p[4])}" for p in points)
    (tmp_path / "a.pcd").write_bytes(_pcd_header(50, "ascii") + rows.encode())
    np.testing.assert_allclose(data.load(tmp_path / "a.pcd", {})[0].current.points, points[:, :4], atol=1e-5)
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")])
    table = np.array([tuple(p[:4]) + (int(p[4]),) for p in points], dtype=record)
    (tmp_path / "b.pcd").write_bytes(_pcd_header(50, "binary") + table.tobytes())
    np.testing.assert_allclose(data.load(tmp_path / "b.pcd", {})[0].current.points, points[:, :4], atol=1e-6)
    (tmp_path / "t.pcd").write_bytes(_pcd_header(50, "binary") + table.tobytes()[:100])
    with pytest.raises(DataError, match="binary PCD is 100 bytes of data"):
        data.load(tmp_path / "t.pcd", {})


def test_a_size_that_underflows_to_zero_compares_as_equal_not_nan():
    """exp(dim) is 0 in float32 below dim -103 (seeded full-size weights reach it at top-k cells): 0 vs 0
    is no difference, and 0 vs a nanometre is none worth failing."""
    heads = _heads([(2, 10, 20, 3.0)])
    heads["dim"][:] = -200.0
    ref = decode(heads, TINY)
    heads["dim"][:] = -20.0  # exp: 2e-9 m
    test = decode(heads, TINY)
    assert ref.sizes.max() == 0.0
    checks = {c.output: c for c in compare_detections([ref], [ref], DetectionLimits(), 0.1)}
    assert checks["heads.size_rel"].value == 0.0 and checks["boxes.size_rel"].value == 0.0
    checks = {c.output: c for c in compare_detections([ref], [test], DetectionLimits(), 0.1)}
    assert checks["heads.size_rel"].passed and checks["heads.size_rel"].value < 1e-6
