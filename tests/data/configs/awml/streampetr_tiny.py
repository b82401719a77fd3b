# AWML's StreamPETR (projects/StreamPETR, 7a6ec07) on two cameras at 64 x 96, ResNet-18, two decoder layers and a
# 64-entry memory queue: the project's tests run it (model_specs/streampetr/config.py: TINY).
# Everything else is streampetr_resnet50_480x640.py's (project-written, AWML's values).
_base_ = ["streampetr_resnet50_480x640.py"]

camera_order = ["CAM_FRONT", "CAM_FRONT_LEFT"]
ida_aug_conf_test = dict(final_dim=(64, 96))
model = dict(
    img_backbone=dict(depth=18),
    img_neck=dict(in_channels=[256, 512]),
    pts_bbox_head=dict(
        num_query=32,
        memory_len=64,
        topk_proposals=16,
        num_propagated=16,
        bbox_coder=dict(max_num=100),  # AWML's 300 exceeds the last layer's 48 queries x 5 classes
        transformer=dict(decoder=dict(num_layers=2, transformerlayers=dict(feedforward_channels=256))),
    ),
)
