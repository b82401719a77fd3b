# CenterPoint-ConvNeXtPC small: AWML's pillar_020_convnext_small_secfpn_4xb8_121m_base.py differs from the standard
# config only in ConvNeXt_PC's widths and depths (and no stochastic depth); the neck takes the narrower stages.
_base_ = ["centerpoint_convnextpc.py"]
backbone_widths = [32, 64, 128, 128, 128]
model = dict(
    pts_backbone=dict(out_channels=backbone_widths, depths=[3, 2, 1, 1, 1], drop_path_rate=0.0),
    pts_neck=dict(in_channels=backbone_widths[2:]),
)
