"""StreamPETR's ``--awml-data`` reader (model_specs/streampetr/real_frames.py) on a T4dataset info file in AWML's format
(tests/t4info.py): AWML's sample order, the test pipeline's resize and crop with the intrinsics moved alike, the ego
poses with the scene's origin taken off, the ground truth as T4Dataset and ObjectRangeFilter leave it; and the spec's
sequence run on it through the plugin. What it refuses: tests/test_faults.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import t4info
from model_specs.streampetr import data, real_frames
from model_specs.streampetr.config import TINY
from model_specs.streampetr.spec import TINY_SPEC, WARMUP


@pytest.fixture(scope="module")
def read(tmp_path_factory):
    path = t4info.write(tmp_path_factory.mktemp("t4"))
    return path, TINY_SPEC.load_data(path, {})


def _pixels(frame: data.Frame, camera: int) -> np.ndarray:
    """The camera's image before normalisation (BGR), from the normalised one."""
    return frame.img[0, camera].transpose(1, 2, 0) * np.asarray(TINY.img_std, np.float32) + np.asarray(TINY.img_mean, np.float32)


def test_one_scene_s_samples_in_awml_s_order_each_with_the_frame_before(read):
    _, samples = read
    assert len(samples) == t4info.SAMPLES - WARMUP and all(len(s) == WARMUP + 1 for s in samples)
    frames = real_frames.sequence_of(samples)
    assert [float(f.timestamp[0]) for f in frames] == pytest.approx([k * t4info.STEP_S for k in range(t4info.SAMPLES)])
    assert frames[0].timestamp.dtype == np.float64 and frames[0].img.shape == (1, 2, 3, *TINY.final_dim)


def test_the_ego_pose_is_lidar_to_global_from_the_scene_s_origin(read):
    frames = real_frames.sequence_of(read[1])
    for k, frame in enumerate(frames):
        assert np.allclose(frame.ego_pose[0][:3, 3], t4info.LIDAR2EGO_T + np.array([k * t4info.STEP_M, 0.0, 0.0]))
        assert np.allclose(frame.ego_pose[0] @ frame.ego_pose_inv[0], np.eye(4), atol=1e-6)


def test_images_are_resized_to_cover_and_cropped_at_the_bottom_and_the_centre(read):
    frame = read[1][0][0]
    front = _pixels(frame, 0)  # 80 x 100 → x0.96 → 76 x 96: the bottom 64 rows (a top crop would start near row 0)
    assert np.allclose(front, front[..., :1], atol=1e-3)  # grey: every channel read alike
    for row in (0, 32):  # the original row under the centre of the resized row 12 + row, times 3
        assert front[row].mean() == pytest.approx(3 * ((12 + row + 0.5) / 0.96 - 0.5), abs=2.0)
    # the intrinsics moved with the image: 10 m ahead on the front camera's axis is its principal point, resized and cropped
    for camera, (scale, crop) in enumerate(((0.96, (0.0, 12.0)), (64 / 60, (16.0, 0.0)))):
        k = frame.intrinsics[0, camera]
        assert k[0, 0] == pytest.approx(50 * scale, rel=1e-6)
        assert (k[0, 2], k[1, 2]) == pytest.approx((48 * scale - crop[0], 36 * scale - crop[1]), rel=1e-6)
    pixel = np.linalg.inv(frame.img2lidar[0, 0].astype(np.float64)) @ (10.0, 0.0, 0.0, 1.0)
    assert pixel[:3] / pixel[2] == pytest.approx((48 * 0.96, 36 * 0.96 - 12, 1.0), rel=1e-5)
    assert frame.img_metas_pad.tolist() == [*TINY.final_dim, 3]


def test_ground_truth_as_t4dataset_and_the_range_filter_leave_it(read):
    frame = read[1][0][0]
    assert frame.gt_boxes.dtype == np.float32 and frame.gt_labels.dtype == np.int64
    assert frame.gt_labels.tolist() == [TINY.classes.index("car"), TINY.classes.index("bus")]  # mapped by name
    assert frame.gt_boxes[0].tolist() == pytest.approx([10.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3, 1.0, 0.5])
    assert frame.gt_boxes[1, 6] == pytest.approx(4.0 - 2 * math.pi) and frame.gt_boxes[1, 7:].tolist() == [0.0, 0.0]


def test_a_scene_without_annotations_gives_empty_ground_truth(read):
    path, _ = read
    samples = TINY_SPEC.load_data(path, {"scene": "name-" + t4info.OTHER})
    assert samples[0][0].gt_boxes.shape == (0, 9) and samples[0][0].gt_labels.shape == (0,)
    assert len(TINY_SPEC.load_data(path, {"first": "1", "frames": "2"})) == 1


@pytest.mark.data
def test_the_tiny_spec_runs_its_sequence_on_the_info_file(run_awml, tmp_path):
    """Opt-in (~15 s: the three sections exported): the sequence judged on the info's frames, every frame passing."""
    path = t4info.write(tmp_path / "t4")
    run = run_awml("--awml-spec=streampetr-tiny", f"--awml-data={path}", "-k", "test_sequence_parity")
    run.result.assert_outcomes(passed=1)
    records = run.report["sequence"]
    assert {r["frame"] for r in records} == set(range(t4info.SAMPLES - WARMUP)) and all(r["passed"] for r in records)
