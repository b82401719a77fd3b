"""The live cross-check against mmdet3d itself (opt-in: ``pytest -m mmdet3d``; needs mmdet3d and mmcv's ops).

Run on the GPU machine, where mmcv's ops build in about two minutes (tests/data/mmdet3d/README.md has
the device call). mmdet3d's CenterPoint is built from the AWML-structured config files through
``--awml-config``'s reader (mmengine's path: mmengine is installed with mmdet3d), not from this
project's config objects, so the reader is checked too. Each recording is made again here and must
equal the committed one, and this project's model must agree with the live peer stage by stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.mmdet3d

mmcv_ops = pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (pip install 'pytest-awml[mmdet3d]')")
pytest.importorskip("mmdet3d.registry", reason="mmdet3d is not installed (pip install 'pytest-awml[mmdet3d]')")

from model_specs.centerpoint.config import TINY  # noqa: E402
from model_specs.centerpoint.mmconfig import _Reader, read_config  # noqa: E402
from model_specs.centerpoint.mmdet3d_peer import PLANS, Recording, compare, record_plan, recording_differences  # noqa: E402
from model_specs.centerpoint.scene import SceneConfig, make_scene  # noqa: E402
from model_specs.centerpoint.voxelize import densify, voxelize  # noqa: E402

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs" / "awml"


@pytest.mark.parametrize("name", ["centerpoint_j6gen2.py", "centerpoint_tiny.py"])
def test_mmengine_reads_what_the_restricted_reader_reads(name):
    config = read_config(CONFIGS / name)
    assert config.values == _Reader(CONFIGS / name).read()
    assert any("projects.CenterPoint.models" in note for note in config.notes)  # AWML's modules: named, not imported


@pytest.mark.parametrize("max_voxels, max_points", [(TINY.max_voxels, TINY.max_points_per_voxel), (500, 4)])
@pytest.mark.parametrize("seed", [0, 1])
def test_voxelizers_agree_pillar_for_pillar(seed, max_voxels, max_points):
    """Including overflow: more pillars than max_voxels, more points in a pillar than max_points."""
    cfg = dataclasses.replace(TINY, max_voxels=max_voxels, max_points_per_voxel=max_points)
    points = densify(make_scene(seed, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12)).sweeps, cfg)
    voxelizer = mmcv_ops.Voxelization(list(cfg.voxel_size), list(cfg.point_cloud_range), max_points, max_voxels, deterministic=True)
    voxelizer.eval()
    voxels, coors, num_points = voxelizer(points)
    ours = voxelize(points, cfg)
    assert torch.equal(ours.coors, coors.long()) and torch.equal(ours.num_points, num_points.long())
    assert torch.equal(ours.features, voxels)


@pytest.fixture(scope="module", params=[plan.name for plan in PLANS])
def live(request):
    plan = next(p for p in PLANS if p.name == request.param)
    recording, cfg = record_plan(plan, CONFIGS)
    return plan, recording, cfg



def test_the_committed_recording_is_what_mmdet3d_computes(live):
    """Exact where the computation is a copy (points, voxels); float tensors within TENSOR_RTOL, because the
    heatmap bias is calibrated on the peer's own output and so differs in its last bits across CPUs."""
    plan, recording, _ = live
    committed = Recording.load(DATA / "mmdet3d", plan.name)
    assert recording_differences(recording, committed) == []


def test_this_project_agrees_with_the_live_peer(live):
    _, recording, cfg = live
    assert cfg == next(p for p in PLANS if p.name == live[0].name).spec_config
    assert compare(recording, cfg).problems() == []
