# centerpoint-tiny as a training config: the j6gen2 config above with a 128 x 128 grid and narrower layers
# (the topology unchanged). Child files see no base variables but through _base_, as in mmengine.
_base_ = ["centerpoint_j6gen2.py"]
point_cloud_range = [-25.6, -25.6, -3.0, 25.6, 25.6, 5.0]
voxel_size = [0.4, 0.4, 8.0]
grid_size = [128, 128, 1]

test_pipeline = _base_.test_pipeline[:2] + [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]
model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range, max_voxels=(12000, 12000)),
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
