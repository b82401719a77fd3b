# AWML's FRNet for the OT128 (projects/FRNet, 7a6ec07) at an eighth of the widths, ResNet-18 blocks and a 32-ring,
# 512-column sensor: the project's tests run it (model_specs/frnet/config.py: TINY).
# Everything else is frnet_t4dataset_ot128.py's (project-written, AWML's values).
_base_ = ["frnet_t4dataset_ot128.py"]

lidar_h = 32
range_w = 512
frustum_w = 128
model = dict(
    data_preprocessor=dict(H=lidar_h, W=frustum_w),
    voxel_encoder=dict(feat_channels=(8, 16, 32, 32), feat_compression=8),
    backbone=dict(in_channels=8, point_in_channels=48, depth=18, stem_channels=16, out_channels=(16, 16, 16, 16), fuse_channels=(32, 16),
                  output_shape=(lidar_h, frustum_w)),
    decode_head=dict(in_channels=16, middle_channels=(16, 32, 16, 8), channels=8),
    auxiliary_head=[
        dict(type="FrustumHead", channels=16, num_classes=27, dropout_ratio=0, conv_seg_kernel_size=1, ignore_index=26, indices=0,
             loss_ce=dict(type="mmdet.CrossEntropyLoss", use_sigmoid=False, class_weight=None, loss_weight=1.0)),
        dict(type="FrustumHead", channels=16, num_classes=27, dropout_ratio=0, conv_seg_kernel_size=1, ignore_index=26, indices=2,
             loss_ce=dict(type="mmdet.CrossEntropyLoss", use_sigmoid=False, class_weight=None, loss_weight=1.0)),
        dict(type="FrustumHead", channels=16, num_classes=27, dropout_ratio=0, conv_seg_kernel_size=1, ignore_index=26, indices=3,
             loss_ce=dict(type="mmdet.CrossEntropyLoss", use_sigmoid=False, class_weight=None, loss_weight=1.0)),
        dict(type="FrustumHead", channels=16, num_classes=27, dropout_ratio=0, conv_seg_kernel_size=1, ignore_index=26, indices=4,
             loss_ce=dict(type="mmdet.CrossEntropyLoss", use_sigmoid=False, class_weight=None, loss_weight=1.0)),
    ],
)
test_pipeline = [
    dict(type="LoadPointsWithIdentifierFromFile", coord_type="LIDAR", load_dim=5, use_dim=4, backend_args=None),
    dict(type="LoadSegAnnotationsWithIdentifier3D", seg_3d_dtype="np.uint8", backend_args=None),
    dict(type="RangeInterpolation", H=lidar_h, W=range_w, fov_up=15.0, fov_down=-25.0, ignore_index=26),
    dict(type="Pack3DDetInputs", keys=["points"], meta_keys=["num_points", "lidar_path", "num_pts_feats"]),
]
