"""AWML's CenterPoint, proven in every CI run: this project's model against mmdet3d's own recorded numbers.

``tests/data/mmdet3d/`` holds what mmdet3d 1.4 computed (``tools/record_mmdet3d.py``; see the README
there): mmdet3d's CenterPoint built from an AWML-structured config through ``--awml-config``'s reader,
its weights, a densified scan, mmcv's voxels, the pillar features, the six head tensors and the boxes of
its own predict path. mmdet3d is not needed here: the recorded weights are loaded strictly into this
project's model and every stage must agree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from model_specs.centerpoint.config import FULL, TINY
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint
from model_specs.centerpoint.mmdet3d_peer import HEADS, MIN_BOXES, TENSOR_RTOL, Recording, compare, recording_differences, state_sha256
from model_specs.centerpoint.model import CenterPoint
from model_specs.centerpoint.spec import SPEC, TINY_SPEC

DATA = Path(__file__).parent / "data"
SPECS = {"centerpoint-tiny": (TINY, TINY_SPEC), "centerpoint": (FULL, SPEC)}


def _load(name: str):
    recording = Recording.load(DATA / "mmdet3d", name)
    return recording, to_centerpoint(read_config(DATA / "configs" / "awml" / recording.meta["config"]), SPECS[name][0])


@pytest.fixture(scope="module", params=list(SPECS))
def recorded(request):
    recording, cfg = _load(request.param)
    return request.param, recording, cfg, compare(recording, cfg)


def test_the_recorded_config_is_the_spec_s(recorded):
    name, recording, cfg, _ = recorded
    config, spec = SPECS[name]
    assert cfg == config == spec.params["model"]
    assert recording.meta["versions"]["mmdet3d"] == "1.4.0"


def test_mmdet3d_s_weights_load_strictly_with_the_same_keys_and_shapes(recorded):
    _, recording, cfg, _ = recorded
    ours = {k: tuple(v.shape) for k, v in CenterPoint(cfg).state_dict().items()}
    theirs = {k: tuple(shape) for k, shape in recording.meta["state_shapes"]}
    assert ours == theirs  # every key and shape of mmdet3d's CenterPoint, nothing else
    state = recording.state_dict()
    assert state_sha256(state) == recording.meta["state_sha256"]  # the weights mmdet3d ran with
    CenterPoint(cfg).load_state_dict(state, strict=True)


def test_every_stage_agrees_with_mmdet3d(recorded):
    """Voxels identical; pillar features and heads within TENSOR_RTOL; mmdet3d's boxes (count, labels; centre,
    z centre, size, yaw, score, velocity within BOX_TOL) from this project's decode of mmdet3d's heads and end to end."""
    _, _, _, result = recorded
    assert result.problems() == []
    assert result.recorded_boxes >= MIN_BOXES and result.end_to_end.count == (result.recorded_boxes,) * 2


def test_the_comparison_would_catch_the_transposed_neck():
    """The seed's bug: the stride-1 deblock as a ConvTranspose2d loads strictly and computes something else."""
    recording, cfg = _load("centerpoint-tiny")
    wrong = compare(recording, dataclasses.replace(cfg, use_conv_for_no_stride=False))
    assert wrong.voxels_identical and wrong.pillar_features <= TENSOR_RTOL  # the neck comes after these
    assert any(wrong.heads[h] > 1e3 * TENSOR_RTOL * max(1.0, wrong.head_scale[h]) for h in HEADS)
    assert any(problem.startswith("head ") for problem in wrong.problems())


def test_the_crosschecks_difference_names_what_a_live_recording_does_not_share():
    """``recording_differences`` (what both live crosschecks hold a run to): nothing for the same recording; the key,
    by name, for a point moved or a float tensor off past TENSOR_RTOL; a float tensor within it passes."""
    committed = Recording.load(DATA / "mmdet3d", "centerpoint-tiny")
    assert recording_differences(committed, Recording.load(DATA / "mmdet3d", "centerpoint-tiny")) == []

    def changed(key, change):
        arrays = dict(committed.arrays)
        arrays[key] = change(np.array(arrays[key]))
        return dataclasses.replace(committed, arrays=arrays)

    assert recording_differences(changed("points", lambda a: a + np.float32(1e-6)), committed) == ["points"]
    scale = float(np.abs(committed.arrays["head/heatmap"]).max())
    assert recording_differences(changed("head/heatmap", lambda a: a + 10 * TENSOR_RTOL * scale), committed) == ["head/heatmap"]
    assert recording_differences(changed("head/heatmap", lambda a: a + TENSOR_RTOL * scale / 10), committed) == []
