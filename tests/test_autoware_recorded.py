"""The bundle pipeline against Autoware's own CUDA pre- and post-processing, in every CI run.

``tests/data/autoware/`` holds what ``autoware_lidar_centerpoint``'s kernels computed on a GPU
(``tools/record_autoware.py``; docs/autoware-oracle.md): for the tiny spec's seeded synthetic frames and the
two real scans, the node's voxels, encoder input and boxes, and the head outputs both decoders were given.
Here the bundle pipeline's own functions run on the CPU on the same frames and must agree: the same voxels with
the same point counts (cells of more than 32 points as Autoware's wrapping slot counter predicts), the encoder
input within :data:`FEATURE_ATOL`, the same objects (count, labels) with boxes and scores within the limits below.
The live comparison (both sides computed now, on the GPU) is ``pytest -m autoware``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_specs.centerpoint.autoware import AutowareSettings, node_config
from model_specs.centerpoint.autoware_decode import decode_autoware
from model_specs.centerpoint.autoware_oracle import recording
from model_specs.centerpoint.autoware_oracle.bundle_side import bundle_voxels
from model_specs.centerpoint.autoware_oracle.compare import BoxDiff, VoxelDiff, Voxels, compare_boxes, compare_voxels
from model_specs.centerpoint.spec import TINY_SPEC

DATA = Path(__file__).parent / "data" / "autoware"
CFG = TINY_SPEC.params["model"]
# The point columns cross the node's float32 densification transform (the current sweep's is near, not exactly,
# the identity); a pillar's mean is a tree sum on the node and a sequential one here. Metres (intensity and time
# lag are integers and exact float32 values, so any difference there is a real one).
FEATURE_ATOL = 2e-5  # measured on the recording: 5.7e-6 (cluster offsets), 1.9e-6 (centre offsets), 0 (points)
# measured: centre 2.7e-6 m, z 0, size 1.1e-7 relative, yaw 2.3e-7 rad (float64 -pi/2 against float32), score 6e-8
CENTRE_M, Z_M, SIZE_REL, YAW_RAD, SCORE = 2e-5, 1e-6, 1e-6, 2e-6, 1e-6


@pytest.fixture(scope="module")
def recorded():
    if not (DATA / f"{TINY_SPEC.name}.npz").is_file():
        pytest.fail(f"{DATA}/{TINY_SPEC.name}.npz is missing: record it with tools/record_autoware.py on a GPU")
    return recording.load(DATA, TINY_SPEC.name, CFG, TINY_SPEC.make_samples)


def frame_ids(meta_frames):
    return [entry["name"] for entry in meta_frames]


def voxel_problems(diff: VoxelDiff) -> list[str]:
    """What breaks 'the same voxels and encoder input' in a comparison (empty: they agree)."""
    found = [f"{name} {getattr(diff, name)}" for name in ("missing", "extra", "count_mismatch", "over_full_unpredicted") if getattr(diff, name)]
    found += [f"{name} {getattr(diff, name):.3g} > {FEATURE_ATOL}" for name in ("points_max_abs", "cluster_max_abs", "centre_max_abs")
              if getattr(diff, name) > FEATURE_ATOL]
    if diff.padding_max_abs != 0.0:
        found.append(f"padding slots differ by {diff.padding_max_abs}")
    if diff.compared == 0:
        found.append("no voxel compared")
    return found


def box_problems(diff: BoxDiff) -> list[str]:
    """What breaks 'the same objects' (empty: they agree)."""
    same = diff.project == diff.autoware == diff.matched
    found = [] if same else [f"{diff.project} boxes here, {diff.autoware} on the node, {diff.matched} matched"]
    limits = {"centre_max_m": CENTRE_M, "z_max_m": Z_M, "size_max_rel": SIZE_REL, "yaw_max_rad": YAW_RAD, "score_max_abs": SCORE}
    return found + [f"{name} {getattr(diff, name):.3g} > {limit}" for name, limit in limits.items() if getattr(diff, name) > limit]


def test_the_recording_covers_synthetic_and_real_frames(recorded):
    meta, frames = recorded
    assert sum(not f.real for f, _ in frames) == meta["synthetic"]["count"] >= 1
    assert sum(f.real for f, _ in frames) == 2, "both real scans (KITTI, nuScenes) are part of the recording"
    assert meta["autoware_grid"][:2] == list(CFG.grid_size[:2]), "Autoware's config computes another grid from the manifest"
    assert sum(len(r.boxes) for _, r in frames) > 0, "no frame gave Autoware a box: the decoders would be compared on nothing"


def test_voxels_and_encoder_input_are_autoware_s(recorded):
    _, frames = recorded
    found = {}
    for frame, theirs in frames:
        ours, cells, _, _ = bundle_voxels(frame.scene, CFG)
        problems = voxel_problems(compare_voxels(ours, theirs.voxels, cells, CFG.grid_size[0]))
        if problems:
            found[frame.name] = problems
    assert not found, f"the bundle pipeline's voxels differ from Autoware's: {found}"


def test_decoded_objects_are_autoware_s(recorded):
    _, frames = recorded
    node, settings = node_config(CFG), AutowareSettings()
    found = {}
    for frame, theirs in frames:
        decoded = decode_autoware(theirs.heads, node, settings)
        problems = box_problems(compare_boxes(decoded.labels, decoded.scores, decoded.boxes, theirs.boxes))
        if problems:
            found[frame.name] = problems
    assert not found, f"decode_autoware differs from Autoware's postprocess_kernel + circle NMS: {found}"


def test_a_moved_voxel_fails_the_comparison(recorded):
    """The comparison can fail: one of the node's voxels moved one cell is missing on one side, extra on the other."""
    _, frames = recorded
    frame, theirs = next((f, r) for f, r in frames if not f.real)
    ours, cells, _, _ = bundle_voxels(frame.scene, CFG)
    moved = theirs.voxels.coors.copy()
    moved[0, 2] = (moved[0, 2] + 1) % CFG.grid_size[0]
    diff = compare_voxels(ours, Voxels(moved, theirs.voxels.num_points, theirs.voxels.features), cells, CFG.grid_size[0])
    assert voxel_problems(diff)


def test_a_changed_score_fails_the_comparison(recorded):
    _, frames = recorded
    node, settings = node_config(CFG), AutowareSettings()
    theirs = next(r for _, r in frames if len(r.boxes))
    decoded = decode_autoware(theirs.heads, node, settings)
    boxes = theirs.boxes.copy()
    boxes[0, 1] += 10 * SCORE
    assert box_problems(compare_boxes(decoded.labels, decoded.scores, decoded.boxes, boxes))
