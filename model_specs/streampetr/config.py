"""StreamPETR's parameters, with the values of AWML's ``projects/StreamPETR/configs/default/resnet50_480x640_baseline.py``
(t4dataset, five cameras at 480 x 640, ResNet-50 + CPFPN, StreamPETRHead with a 1024-entry memory queue).

That config is the one the deploy script's defaults fit (``deploy/torch2onnx.py`` swaps the flash attention of
the decoder for ``PETRMultiheadAttention`` and reads ``ida_aug_conf.final_dim``, ``num_cameras``, ``stride`` and the
head's ``in_channels``), and the one whose backbone needs no custom ops (the VoVNet baselines use the same head).
Each switch is a field here with AWML's value as default, read from a training config by ``mmconfig.to_streampetr``.
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")  # autoware_ml/configs/detection3d/dataset/t4dataset/base.py
CAMERA_ORDER = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_BACK_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT")


@dataclass(frozen=True)
class StreamPETRConfig:
    classes: tuple[str, ...] = CLASSES
    num_cameras: int = 5  # len(camera_order)
    camera_order: tuple[str, ...] = CAMERA_ORDER  # the cameras' order in img and every per-camera input
    final_dim: tuple[int, int] = (480, 640)  # ida_aug_conf(_test).final_dim: (height, width)
    stride: int = 16
    img_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)  # img_norm_cfg, BGR, to_rgb=False
    img_std: tuple[float, float, float] = (57.375, 57.120, 58.395)
    to_rgb: bool = False
    depth: int = 50  # img_backbone: mmdet ResNet
    out_indices: tuple[int, ...] = (2, 3)
    neck_in: tuple[int, ...] = (1024, 2048)  # img_neck: CPFPN
    neck_out: int = 256
    # pts_bbox_head: StreamPETRHead
    in_channels: int = 256
    num_query: int = 644
    memory_len: int = 1024
    topk_proposals: int = 256
    num_propagated: int = 256
    lid: bool = True
    depth_num: int = 64
    depth_start: float = 1.0
    position_range: tuple[float, ...] = (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0)
    pc_range: tuple[float, ...] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)  # bbox_coder.pc_range (point_cloud_range)
    code_weights: tuple[float, ...] = (2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    code_size: int = 10
    num_reg_fcs: int = 2
    # transformer.decoder
    num_layers: int = 6
    num_heads: int = 8
    feedforward_channels: int = 2048
    opset: int = 17  # torch2onnx.py passes none: torch.onnx.export's default in the torch AWML pins
    # decoding (not in the graphs): pts_bbox_head.bbox_coder (NMSFreeCoder) and the head's get_bboxes
    max_num: int = 300  # the top-k (query, class) scores of the last decoder layer kept
    score_threshold: float | None = None  # the coder's (None: none); a score must be >= it
    post_center_range: tuple[float, ...] = (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0)  # box centres outside are dropped
    score_thres: float = 0.0  # the head's get_bboxes: a score must be > it
    use_bottom_center: bool = True  # get_bboxes reports z at the box's bottom (z - h / 2), as LiDARInstance3DBoxes holds it

    @property
    def feature_size(self) -> tuple[int, int]:
        return self.final_dim[0] // self.stride, self.final_dim[1] // self.stride

    @property
    def tokens(self) -> int:
        """Image tokens the head attends to: every camera's feature map, flattened."""
        h, w = self.feature_size
        return self.num_cameras * h * w


FULL = StreamPETRConfig()
# StreamPETR's topology on two cameras at 64 x 96, ResNet-18, two decoder layers, a 64-entry memory: the project's tests.
# embed_dims stays 256 (AWML's MLN is 256 wide whatever the head's width) and depth_num 64 (the cone reads the
# 30th-from-last depth bin: fewer than 30 bins would drop it). max_num 100: AWML's 300 exceeds the last layer's 48 queries x 5
# classes, where its top-k would fail.
TINY = StreamPETRConfig(num_cameras=2, camera_order=CAMERA_ORDER[:2], final_dim=(64, 96), depth=18, neck_in=(256, 512), num_query=32,
                        memory_len=64, topk_proposals=16,
                        num_propagated=16, num_layers=2, feedforward_channels=256, max_num=100)
