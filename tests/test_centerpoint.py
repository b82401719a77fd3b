"""The CenterPoint model and pre-processing: mmdet3d's names and mmcv's voxelization semantics."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import toy
from model_specs.centerpoint.config import FULL, TINY
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport, seeded, upsample_layer
from model_specs.centerpoint.scene import SceneConfig, Sweep, make_scene, translation
from model_specs.centerpoint.spec import TINY_SPEC
from model_specs.centerpoint.voxelize import PADDING, Voxels, decorate, densify, scatter, voxel_buffers, voxelize
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.workspace import Workspace


def test_state_dict_keys_are_mmdet3d_s():
    keys = set(CenterPoint(FULL).state_dict())
    for key in [
        "pts_voxel_encoder.pfn_layers.0.linear.weight",
        "pts_voxel_encoder.pfn_layers.1.norm.running_var",
        "pts_backbone.blocks.0.0.weight",
        "pts_backbone.blocks.2.16.running_mean",
        "pts_neck.deblocks.0.0.weight",
        "pts_neck.deblocks.2.1.num_batches_tracked",
        "pts_bbox_head.shared_conv.conv.weight",
        "pts_bbox_head.shared_conv.bn.weight",
        "pts_bbox_head.task_heads.0.heatmap.0.conv.weight",
        "pts_bbox_head.task_heads.0.heatmap.1.bias",
        "pts_bbox_head.task_heads.0.vel.1.weight",
    ]:
        assert key in keys, key
    model = CenterPoint(FULL)
    assert model.pts_voxel_encoder.pfn_layers[0].linear.weight.shape == (16, 11)  # halved, mmdet3d-style
    assert model.pts_voxel_encoder.pfn_layers[1].linear.weight.shape == (32, 32)
    assert model.pts_bbox_head.task_heads[0].heatmap[1].weight.shape == (5, 64, 1, 1)  # final_kernel=1, head_conv 64
    assert model.pts_bbox_head.task_heads[0].reg[0].conv.weight.shape == (64, 64, 1, 1)
    assert FULL.grid_size == (1020, 1020, 1) and FULL.head_size == (510, 510)
    # SECONDFPN at AWML's strides 0.5 / 1 / 2 with use_conv_for_no_stride: conv k2, conv 1x1, deconv k2
    kinds = [type(d[0]) for d in model.pts_neck.deblocks]
    assert kinds == [torch.nn.Conv2d, torch.nn.Conv2d, torch.nn.ConvTranspose2d]
    assert model.pts_neck.deblocks[1][0].weight.shape == (128, 128, 1, 1)


def test_the_stride_one_deblock_is_a_conv_not_its_transpose():
    """Same weight shape, different computation: a checkpoint loads strictly into either."""
    conv, deconv = upsample_layer(8, 8, 1.0, use_conv_for_no_stride=True), upsample_layer(8, 8, 1.0, use_conv_for_no_stride=False)
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(deconv, torch.nn.ConvTranspose2d)
    deconv.load_state_dict(conv.state_dict(), strict=True)
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        assert not torch.allclose(conv(x), deconv(x), atol=1e-3)
        assert torch.allclose(conv(x), torch.einsum("oi,bihw->bohw", conv.weight[:, :, 0, 0], x), atol=1e-6)


def _naive_voxelize(points: np.ndarray, cfg):
    """mmcv's CPU hard-voxelize loop, transcribed: first-come voxels and points."""
    r, size = np.array(cfg.point_cloud_range, np.float32), np.array(cfg.voxel_size, np.float32)
    grid = np.array(cfg.grid_size)
    index, feats, coors = {}, [], []
    for point in points:
        cell = np.floor((point[:3] - r[:3]) / size).astype(int)
        if (cell < 0).any() or (cell >= grid).any():
            continue
        key = tuple(cell)
        if key not in index:
            if len(index) >= cfg.max_voxels:
                continue
            index[key] = len(index)
            feats.append([])
            coors.append([cell[2], cell[1], cell[0]])
        bucket = feats[index[key]]
        if len(bucket) < cfg.max_points_per_voxel:
            bucket.append(point)
    return feats, coors


@pytest.mark.parametrize("max_voxels", [TINY.max_voxels, 50])
def test_voxelize_matches_mmcv_semantics(max_voxels):
    import dataclasses

    cfg = dataclasses.replace(TINY, max_voxels=max_voxels, max_points_per_voxel=4)
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(-30, 30, (3000, 3)), rng.uniform(0, 1, (3000, 2))], axis=1).astype(np.float32)
    points[::7, :2] = points[3, :2]  # many points in one pillar: overflow beyond max_points
    feats, coors = _naive_voxelize(points, cfg)
    voxels = voxelize(torch.from_numpy(points), cfg)
    assert voxels.coors.tolist() == coors
    assert voxels.num_points.tolist() == [len(f) for f in feats]
    for i, bucket in enumerate(feats):
        assert np.array_equal(voxels.features[i, : len(bucket)].numpy(), np.array(bucket))
        assert not voxels.features[i, len(bucket):].any()


def test_voxelize_drops_out_of_range_and_non_finite_points():
    points = torch.tensor([[0.0, 0.0, 0.0, 1, 0], [100.0, 0, 0, 1, 0], [float("nan"), 0, 0, 1, 0], [0, 0, 6.0, 1, 0]])
    voxels = voxelize(points, TINY)
    assert voxels.features.shape[0] == 1 and voxels.num_points.tolist() == [1]
    empty = voxelize(points[1:2], TINY)
    assert empty.features.shape == (0, TINY.max_points_per_voxel, 5)


def test_decorate_offsets_and_mask():
    points = torch.tensor([[0.1, 0.1, 0.5, 10, 1], [0.3, 0.2, 1.5, 20, 2]])
    voxels = voxelize(points, TINY)
    f = decorate(voxels, TINY)
    assert f.shape == (1, 32, 11)
    assert torch.allclose(f[0, :2, 5:8], points[:, :3] - points[:, :3].mean(0))
    x0, y0, z0 = (TINY.point_cloud_range[i] + TINY.voxel_size[i] * (int((0 - TINY.point_cloud_range[i]) // TINY.voxel_size[i]) + 0.5) for i in range(3))
    assert torch.allclose(f[0, 0, 8:11], points[0, :3] - torch.tensor([x0, y0, z0]), atol=1e-5)
    assert not f[0, 2:].any()  # padding stays zero


def test_scatter_places_each_pillar_at_its_cell():
    coors = torch.tensor([[0, 5, 7], [0, 0, 0], [0, 127, 126]])
    pillars = torch.arange(3 * 32, dtype=torch.float32).view(3, 1, 32)
    canvas = scatter(pillars, coors, TINY)
    assert canvas.shape == (1, 32, 128, 128)
    for i, (_, y, x) in enumerate(coors.tolist()):
        assert torch.equal(canvas[0, :, y, x], pillars[i, 0])
    assert canvas.abs().sum() == pillars.abs().sum()


def test_buffers_with_room_hold_the_voxels_then_padding_that_scatter_leaves_out():
    """What a CUDA graph captures (fixed-size buffers, the count on the device) gives voxelize's rows, then padding
    rows (zero features, PADDING coors) that scatter writes nowhere: the canvas is the exact one's."""
    rng = np.random.default_rng(2)
    points = torch.from_numpy(np.concatenate([rng.uniform(-30, 30, (2000, 3)), rng.uniform(0, 1, (2000, 2))], axis=1).astype(np.float32))
    exact = voxelize(points, TINY)
    count = exact.coors.shape[0]
    features, counts, coors, counted = voxel_buffers(points, TINY, capacity=count + 300)
    assert int(counted) == count and features.shape[0] == count + 300
    assert torch.equal(features[:count], exact.features) and torch.equal(coors[:count], exact.coors)
    assert torch.equal(counts[:count], exact.num_points)
    assert not features[count:].any() and not counts[count:].any() and (coors[count:] == PADDING).all()
    decorated = decorate(Voxels(features, counts, coors), TINY)
    assert torch.equal(decorated[:count], decorate(exact, TINY)) and not decorated[count:].any()
    pillars = torch.randn(count + 300, 1, 32)  # padding rows of an encoder are not zero (its bias): still never scattered
    assert torch.equal(scatter(pillars, coors, TINY), scatter(pillars[:count], exact.coors, TINY))


def test_synthetic_scene_is_realistic():
    cfg = SceneConfig(max_range=60.0, rings=64, azimuth_steps=900, objects=20)
    scene = make_scene(3, cfg)
    points = scene.current.points
    assert points.dtype == np.float32 and points.shape[1] == 4
    assert scene.boxes.shape == (20, 9) and set(scene.labels) <= set(range(5))
    r = np.hypot(points[:, 0], points[:, 1])
    near, far = (r < 20).sum() / (math.pi * 20**2), ((r > 40) & (r < 60)).sum() / (math.pi * (60**2 - 40**2))
    assert near > 10 * far  # density falls with range, as a spinning lidar's does
    assert np.array_equal(make_scene(3, cfg).current.points, points)
    # one past sweep, 0.1 s earlier, taken from where the ego was then
    (now, before) = scene.sweeps
    assert now.time_s == 0.0 and before.time_s == pytest.approx(-cfg.sweep_interval_s)
    assert np.array_equal(now.pose, np.eye(4)) and before.pose[0, 3] == pytest.approx(-cfg.ego_speed_mps * cfg.sweep_interval_s)


def test_densify_moves_past_sweeps_into_the_current_frame_with_their_time_lag():
    now = Sweep(np.array([[1.0, 2.0, 0.5, 7.0]], np.float32), 10.0, translation(3.0))
    before = Sweep(np.array([[1.0, 0.0, 0.0, 9.0], [2.0, 0.0, 0.0, 1.0]], np.float32), 9.9, translation(2.5, 1.0))
    older = Sweep(np.array([[0.0, 0.0, 0.0, 5.0]], np.float32), 9.8, translation(2.0))
    points = densify((now, before, older), TINY)  # TINY densifies one past sweep: `older` is left out
    assert points.dtype == torch.float32 and points.shape == (3, 5)
    assert torch.equal(points[0], torch.tensor([1.0, 2.0, 0.5, 7.0, 0.0]))
    expected = torch.tensor([[0.5, 1.0, 0.0, 9.0, 0.1], [1.5, 1.0, 0.0, 1.0, 0.1]])  # world <- before, then current <- world
    assert torch.allclose(points[1:], expected, atol=1e-6)
    four = densify((now, before), dataclasses.replace(TINY, point_feature_names=("x", "y", "z", "intensity"), past_sweeps=0))
    assert four.shape == (1, 4)


def test_rot_y_axis_reference_swaps_dims_and_rotates():
    model = seeded(TINY, 0)
    x = torch.randn(1, 32, 128, 128)
    with torch.no_grad():
        plain = BackboneNeckHeadExport(model)(x)
        autoware = BackboneNeckHeadExport(model, rot_y_axis_reference=True)(x)
    assert torch.equal(autoware[3], plain[3][:, [1, 0, 2]])
    yaw, yaw_aw = torch.atan2(plain[4][:, 0], plain[4][:, 1]), torch.atan2(autoware[4][:, 0], autoware[4][:, 1])
    expected = -yaw - math.pi / 2  # clockwise from the y axis
    assert torch.allclose(torch.sin(yaw_aw), torch.sin(expected), atol=1e-5)
    assert torch.allclose(torch.cos(yaw_aw), torch.cos(expected), atol=1e-5)


def test_seeded_weights_give_non_trivial_heads():
    model = seeded(TINY, 0)
    scene = make_scene(0, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12))
    voxels = voxelize(densify(scene.sweeps, TINY), TINY)
    with torch.no_grad():
        canvas = scatter(VoxelEncoderExport(model)(decorate(voxels, TINY)), voxels.coors, TINY)
        heads = BackboneNeckHeadExport(model)(canvas)
    assert all(h.std() > 0.05 for h in heads)  # activations keep their scale through the network
    assert torch.equal(seeded(TINY, 0).state_dict()["pts_backbone.blocks.0.0.weight"], model.state_dict()["pts_backbone.blocks.0.0.weight"])
    assert not torch.equal(seeded(TINY, 1).state_dict()["pts_backbone.blocks.0.0.weight"], model.state_dict()["pts_backbone.blocks.0.0.weight"])


def test_the_canvas_a_session_feeds_the_backbone_is_the_standalone_one(tmp_path):
    """The backbone is fed by the encoder's reference outputs (FedBy), not by a second encoder run: the canvas is
    the one its standalone make_inputs makes, bit for bit (the bundle's head: from the padded encoder's rows)."""
    workspace = Workspace(toy.plan(tmp_path, specs=(TINY_SPEC,)), ArtifactStore(tmp_path))
    loaded = workspace.model(TINY_SPEC)
    for head in (TINY_SPEC.components[1], TINY_SPEC.bundle_components[1]):
        assert head.fed_by is not None
        fed = workspace.inputs(TINY_SPEC, head)
        with torch.inference_mode():
            standalone = [head.make_inputs(loaded.model, sample)["spatial_features"].numpy() for sample in loaded.samples]
        assert len(fed) == len(standalone) == 2
        for got, want in zip(fed, standalone):
            assert np.count_nonzero(want) > 1000
            if head is TINY_SPEC.components[1]:
                assert np.array_equal(got["spatial_features"], want)
            else:  # the padded encoder's rows: the same pillars through a matrix product of more rows
                np.testing.assert_allclose(got["spatial_features"], want, rtol=1e-6, atol=1e-6)
