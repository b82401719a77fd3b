# AWML's car traffic-light classifier (projects/MobileNetv2, 7a6ec07) at a quarter of the widths on 64 x 64 crops:
# the project's tests run it (model_specs/mobilenetv2/config.py: CAR_TINY).
# Everything else is mobilenetv2_tlr_car.py's (project-written, AWML's values).
_base_ = ["mobilenetv2_tlr_car.py"]

IMG_SCALE = 64
model = dict(backbone=dict(widen_factor=0.25))
resize_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="CropROI"),
    dict(type="Resize", scale=IMG_SCALE, backend="pillow", keep_ratio=True),
    dict(type="Pad", pad_to_square=True),
    dict(type="PackInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=IMG_SCALE, backend="pillow", keep_ratio=True),
    dict(type="Pad", pad_to_square=True),
    dict(type="PackInputs"),
]
val_dataloader = dict(dataset=dict(pipeline=resize_pipeline))
