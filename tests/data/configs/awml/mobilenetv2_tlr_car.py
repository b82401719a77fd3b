"""A project-written training config with the structure and values of AWML 7a6ec07's
``projects/MobileNetv2/configs/t4dataset/MobileNetv2-CarTrafficLight/mobilenet-v2_tlr_car_t4dataset.py`` (facts):
the car traffic-light classifier, read by model_specs/mobilenetv2 as CAR."""

_base_ = ["cls2d_default_runtime.py", "cls2d_schedule_1x.py", "tlr_classifier_car_dataset.py"]
custom_imports = dict(allow_failed_imports=False, imports=["projects.MobileNetv2.mobilenet", "autoware_ml.classification2d.metrics"])
default_scope = "mmpretrain"

IMG_SCALE = 224
BATCH_SIZE = 32
NUM_WORKERS = 8
NUM_EPOCHS = 300
VAL_INTERVAL = 20
CHECKPOINT_INTERVAL = 1
LOG_INTERVAL = 100
ANN_FILE = "./data/info/tlr_classifier_car/"

model = dict(
    type="ImageClassifier",
    backbone=dict(type="MobileNetV2", widen_factor=1.0),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(type="LinearClsHead", in_channels=1280, num_classes=len(_base_.classes), topk=(1, 2),
              loss=dict(type="CrossEntropyLoss", loss_weight=1.0)),
)
data_preprocessor = dict(num_classes=len(_base_.classes), to_rgb=True, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
load_from = "https://download.openmmlab.com/mmclassification/v0/mobilenet_v2/mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth"

test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=IMG_SCALE, backend="pillow", keep_ratio=True),
    dict(type="Pad", pad_to_square=True),
    dict(type="PackInputs"),
]
resize_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="CropROI"),
    dict(type="Resize", scale=IMG_SCALE, backend="pillow", keep_ratio=True),
    dict(type="Pad", pad_to_square=True),
    dict(type="PackInputs"),
]
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="CropROI"),
    dict(type="Resize", scale=IMG_SCALE, backend="pillow", keep_ratio=True),
    dict(type="Pad", pad_to_square=True),
    dict(type="Resize", scale=(IMG_SCALE, IMG_SCALE), backend="pillow"),
    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
    dict(type="ColorJitter", brightness=0.8, contrast=0.4, saturation=0.1),
    dict(type="PackInputs"),
]

dataset_type = "TLRClassificationDataset"
train_dataloader = dict(
    batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, persistent_workers=True, pin_memory=True, collate_fn=dict(type="default_collate"),
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ANN_FILE + "tlr_infos_train.json", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, persistent_workers=True, pin_memory=True, collate_fn=dict(type="default_collate"),
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ANN_FILE + "tlr_infos_test.json", pipeline=resize_pipeline),
)
test_dataloader = dict(
    batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, persistent_workers=True, pin_memory=True, collate_fn=dict(type="default_collate"),
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ANN_FILE + "tlr_infos_test.json", pipeline=resize_pipeline),
)
val_evaluator = dict(type="MultiLabelMetric", topk=1)
test_evaluator = dict(type="TLRClassificationMetric", class_names=_base_.classes, topk=1, average=None,
                      items=("precision", "recall", "f1-score", "support"))

optimizer = dict(type="SGD", lr=5e-4, momentum=0.9, weight_decay=0.00004)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = dict(type="StepLR", by_epoch=True, gamma=0.98, step_size=1)
train_cfg = dict(by_epoch=True, max_epochs=NUM_EPOCHS, val_interval=VAL_INTERVAL, dynamic_intervals=[(NUM_EPOCHS - 50, 5)])
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=LOG_INTERVAL),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=CHECKPOINT_INTERVAL, save_best="multi-label/f1-score_top1", max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="VisualizationHook", enable=False),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"), mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0))
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="UniversalVisualizer", vis_backends=vis_backends)
launcher = "none"
log_level = "INFO"
work_dir = "./work_dirs/mobilenet-v2_tlr_car_t4dataset"
