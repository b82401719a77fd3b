# yolox-tiny as a training config: the YOLOX_opt_elan config above at a quarter of the widths and 320 x 320
# (the topology unchanged). Child files see base variables only through _base_, as in mmengine.
_base_ = ["yolox_elan_t4dataset.py"]
IMG_SCALE = (320, 320)
test_pipeline = _base_.test_pipeline[:1] + [
    dict(type="Resize", scale=IMG_SCALE, keep_ratio=True),
    dict(type="Pad", pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
] + _base_.test_pipeline[3:]
model = dict(
    backbone=dict(widen_factor=0.25),
    neck=dict(in_channels=[32, 64, 128], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32),
)
