"""Cross-check against mmdet3d's own CenterPoint (opt-in: ``pytest -m mmdet3d``, needs the extra).

Not run on this project's machines: installing mmcv compiles its C++ ops from source, which on the
2-core CI machine had done about half of them after 1 h 45 min. See the README for the install.
mmdet3d's model is built from the same settings, its random-initialised weights are copied into the
project's model (the keys are mmdet3d's), and both must agree within 1e-5 on the same point cloud:
mmcv's Voxelization against the project's voxelizer pillar for pillar, then the raw head outputs.
"""

import pytest
import torch

pytestmark = pytest.mark.mmdet3d

mmcv_ops = pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (pip install 'pytest-awml[mmdet3d]')")
mmdet3d_registry = pytest.importorskip("mmdet3d.registry", reason="mmdet3d is not installed (pip install 'pytest-awml[mmdet3d]')")

from model_specs.centerpoint.config import TINY  # noqa: E402
from model_specs.centerpoint.model import CenterPoint  # noqa: E402
from model_specs.centerpoint.scene import SceneConfig, make_scene  # noqa: E402
from model_specs.centerpoint.voxelize import decorate, scatter, voxelize  # noqa: E402

TOL = 1e-5


def _mmdet3d_model(cfg):
    from mmdet3d.utils import register_all_modules

    register_all_modules()
    nx, ny, _ = cfg.grid_size
    model = dict(
        type="CenterPoint",
        pts_voxel_encoder=dict(type="PillarFeatureNet", in_channels=cfg.point_features, feat_channels=list(cfg.pfn_channels),
                               with_distance=False, with_cluster_center=True, with_voxel_center=True, legacy=False,
                               voxel_size=list(cfg.voxel_size), point_cloud_range=list(cfg.point_cloud_range),
                               norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01)),
        pts_middle_encoder=dict(type="PointPillarsScatter", in_channels=cfg.pfn_channels[-1], output_shape=(ny, nx)),
        pts_backbone=dict(type="SECOND", in_channels=cfg.pfn_channels[-1], out_channels=list(cfg.backbone_channels),
                          layer_nums=list(cfg.backbone_layers), layer_strides=list(cfg.backbone_strides),
                          norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01), conv_cfg=dict(type="Conv2d", bias=False)),
        pts_neck=dict(type="SECONDFPN", in_channels=list(cfg.backbone_channels), out_channels=list(cfg.neck_channels),
                      upsample_strides=list(cfg.neck_upsample_strides), norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01),
                      upsample_cfg=dict(type="deconv", bias=False), use_conv_for_no_stride=True),
        pts_bbox_head=dict(type="CenterHead", in_channels=sum(cfg.neck_channels),
                           tasks=[dict(num_class=len(cfg.class_names), class_names=list(cfg.class_names))],
                           common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
                           share_conv_channel=cfg.head_shared_channels,
                           bbox_coder=dict(type="CenterPointBBoxCoder", post_center_range=list(cfg.post_center_range), max_num=500,
                                           score_threshold=cfg.score_threshold, out_size_factor=cfg.out_size_factor,
                                           voxel_size=list(cfg.voxel_size[:2]), pc_range=list(cfg.point_cloud_range[:2]), code_size=9),
                           separate_head=dict(type="SeparateHead", init_bias=cfg.heatmap_init_bias, final_kernel=cfg.head_final_kernel),
                           norm_bbox=True),
    )
    return mmdet3d_registry.MODELS.build(model).eval()


def test_voxelizers_agree_pillar_for_pillar():
    points = torch.from_numpy(make_scene(0, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12)).points)
    voxelizer = mmcv_ops.Voxelization(list(TINY.voxel_size), list(TINY.point_cloud_range), TINY.max_points_per_voxel,
                                      TINY.max_voxels, deterministic=True)
    voxels, coors, num_points = voxelizer(points)
    ours = voxelize(points, TINY)
    assert torch.equal(ours.coors, coors.long()) and torch.equal(ours.num_points, num_points.long())
    assert torch.equal(ours.features, voxels)


def test_same_weights_same_heads():
    reference = _mmdet3d_model(TINY)
    ours = CenterPoint(TINY).eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k.split(".")[0] in dict(ours.named_children())}, strict=True)
    points = torch.from_numpy(make_scene(1, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12)).points)
    voxels = voxelize(points, TINY)
    batch_coors = torch.nn.functional.pad(voxels.coors, (1, 0))  # mmdet3d prefixes the batch index
    with torch.no_grad():
        theirs_pillars = reference.pts_voxel_encoder(voxels.features, voxels.num_points, batch_coors)
        ours_pillars = ours.pts_voxel_encoder(decorate(voxels, TINY)).squeeze(1)
        assert torch.allclose(ours_pillars, theirs_pillars, atol=TOL)
        canvas = scatter(ours_pillars[:, None], voxels.coors, TINY)
        assert torch.allclose(canvas, reference.pts_middle_encoder(theirs_pillars, batch_coors, 1), atol=TOL)
        theirs = reference.pts_bbox_head(reference.pts_neck(reference.pts_backbone(canvas)))[0][0]
        mine = ours.pts_bbox_head(ours.pts_neck(ours.pts_backbone(canvas)))
    for name, tensor in zip(("heatmap", "reg", "height", "dim", "rot", "vel"), mine):
        assert torch.allclose(tensor, theirs[name], atol=TOL), name
