# centerpoint-shortrange-tiny: CenterPoint-ShortRange's topology (0.16 m pillars, BackwardPillarFeatureNet, SECOND
# 1/2/2, SECONDFPN 1/2/4, heads at full resolution) on +-12.8 m with narrower layers, for CI.
_base_ = ["centerpoint_shortrange.py"]
point_cloud_range = [-12.8, -12.8, -3.0, 12.8, 12.8, 5.0]
voxel_size = [0.16, 0.16, 8.0]
grid_size = [160, 160, 1]

test_pipeline = _base_.test_pipeline[:2] + [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]
model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range, max_voxels=(8000, 8000)),
    ),
    pts_voxel_encoder=dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size),
    pts_middle_encoder=dict(output_shape=(grid_size[0], grid_size[1])),
    pts_backbone=dict(out_channels=[16, 32, 64]),
    pts_neck=dict(in_channels=[16, 32, 64], out_channels=[32, 32, 32]),
    pts_bbox_head=dict(
        in_channels=sum([32, 32, 32]),
        share_conv_channel=32,
        separate_head=dict(head_conv=32),
        bbox_coder=dict(voxel_size=voxel_size, pc_range=point_cloud_range),
    ),
    train_cfg=dict(pts=dict(grid_size=grid_size, voxel_size=voxel_size, point_cloud_range=point_cloud_range)),
    test_cfg=dict(pts=dict(grid_size=grid_size, pc_range=point_cloud_range, voxel_size=voxel_size)),
)
