# A training config with the structure and model values of AWML's calibration classifier
# (projects/CalibrationStatusClassification/configs/t4dataset/resnet18_5ch_1xb16-50e_j6gen2.py), written for
# pytest-awml: mmpretrain's own bases by package (read from mmpretrain where it is installed, named and skipped
# where not), a dataset base, the model, and the transform of the test pipeline. Training settings kept to a few.
_base_ = [
    "mmpretrain::_base_/default_runtime.py",
    "mmpretrain::_base_/models/resnet18.py",
    "calibration_gen2_base.py",
]

data_root = "/workspace/data/t4dataset"
batch_size = 16
max_epochs = 50
max_depth = 128.0
dilation_size = 1
miscalibration_probability = 0.5

data_preprocessor = dict()

model = dict(
    type="mmpretrain.ImageClassifier",
    backbone=dict(
        type="ResNet",
        depth=18,
        in_channels=5,
        num_stages=4,
        out_indices=(3,),
        frozen_stages=-1,
        style="pytorch",
        norm_cfg=dict(type="BN", requires_grad=True),
    ),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=2,
        in_channels=512,
        loss=dict(type="LabelSmoothLoss", loss_weight=1.0, label_smooth_val=0.1, reduction="mean"),
        topk=(1,),
        init_cfg=dict(type="Normal", layer="Linear", mean=0, std=0.01, bias=0),
    ),
)

test_pipeline = [
    dict(
        type="CalibrationClassificationTransform",
        mode="test",
        max_depth=max_depth,
        dilation_size=dilation_size,
        undistort=True,
        miscalibration_probability=miscalibration_probability,
        enable_augmentation=False,
        transform_config=_base_.transform_config,
        data_root=data_root,
    ),
    dict(type="PackInputs", input_key="fused_img"),
]
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.001, weight_decay=0.01), clip_grad=dict(max_norm=2.0))
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1, val_begin=5)
randomness = dict(seed=42, deterministic=False, diff_rank_seed=False)
