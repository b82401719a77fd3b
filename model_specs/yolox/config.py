"""YOLOX-ELAN's parameters, with the values of AWML's YOLOX_opt_elan t4dataset config.

Every architectural switch of AWML's ``yolox-s-opt-elan_960x960_300e_t4dataset.py`` (ELANDarknet,
YOLOXPAFPN_ELAN, mmdet's YOLOXHead) is a field here with AWML's value as default, and
``mmconfig.to_yolox`` reads each one from a training config. The recorded mmdet outputs under
``tests/data/upstream/`` prove the model built from these fields computes what mmdet computes with
AWML's own backbone and neck modules.
"""

from __future__ import annotations

from dataclasses import dataclass

# ELANDarknet.arch_settings["P5"]: in channels, out channels, blocks, expand ratio, add identity (per stage,
# before widen/deepen). Stage 4 has no residual; the stages' ASPP switch is off in P5.
P5 = ((32, 64, 1, 0.5, True), (64, 128, 3, 0.5, True), (128, 256, 3, 0.5, True), (256, 512, 1, 0.5, False))
# mmdet's YOLOX norm: BN with momentum 0.03, eps 0.001, as (eps, momentum)
YOLOX_BN = (1e-3, 0.03)
# t4dataset_dynamic_recognition: AWML's 8 dynamic-object classes, in its order
CLASSES = ("unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle")


@dataclass(frozen=True)
class YoloxConfig:
    """Everything that shapes the model, its input and its two decoders.

    ``input_size`` is (height, width) of the letterboxed network input; camera frames of ``camera_size``
    are resized into it keeping their aspect ratio and padded bottom/right with ``pad_value``.
    """

    input_size: tuple[int, int] = (960, 960)
    classes: tuple[str, ...] = CLASSES
    # backbone: ELANDarknet
    stage_settings: tuple[tuple[int, int, int, float, bool], ...] = P5
    deepen_factor: float = 2.0
    widen_factor: float = 1.0
    out_indices: tuple[int, ...] = (2, 3, 4)  # of (stem, stage1..4): strides 8, 16, 32
    backbone_act: str = "ReLU6"
    backbone_norm: tuple[float, float] = YOLOX_BN
    # neck: YOLOXPAFPN_ELAN (reduces only on the top-down path, then 1x1 out-convs to neck_out_channels)
    neck_in_channels: tuple[int, ...] = (128, 256, 512)
    neck_out_channels: int = 128
    neck_elan_blocks: int = 2
    neck_act: str = "ReLU6"
    neck_norm: tuple[float, float] = YOLOX_BN
    # head: mmdet's YOLOXHead (decoupled: stacked 3x3 convs per branch, then 1x1 cls/reg/obj convs)
    head_in_channels: int = 128
    head_feat_channels: int = 128
    head_stacked_convs: int = 2
    head_act: str = "ReLU6"
    head_norm: tuple[float, float] = YOLOX_BN
    strides: tuple[int, ...] = (8, 16, 32)
    # input: AWML's test pipeline (Resize keep_ratio, Pad to square with 114) and Autoware's letterbox
    pad_value: float = 114.0
    camera_size: tuple[int, int] = (1080, 1920)  # synthetic camera frames; exactly 2x the letterboxed content
    # mmdet's evaluation decoder (test_cfg): best class per anchor, score >= threshold, class-aware NMS
    eval_score_threshold: float = 0.01
    eval_nms_iou: float = 0.65
    # Autoware's decoder (autoware_tensorrt_yolox): every class with obj x cls > threshold, class-agnostic NMS
    autoware_score_threshold: float = 0.3
    autoware_nms_iou: float = 0.7
    opset: int = 11  # tier4/YOLOX's tools/export_onnx.py, which AWML's deploy script runs
    # seeded weights only: anchor points above Autoware's threshold on the calibration frame
    calibration_detections: int = 30

    @property
    def stem_channels(self) -> int:
        return int(self.stage_settings[0][0] * self.widen_factor)

    @property
    def stages(self) -> tuple[tuple[int, int, int, float, bool], ...]:
        """Each stage's (in, out, blocks, expand ratio, add identity) after ELANDarknet's widen/deepen rules."""
        return tuple((int(cin * self.widen_factor), int(cout * self.widen_factor), max(round(n * self.deepen_factor), 1), ratio, identity)
                     for cin, cout, n, ratio, identity in self.stage_settings)

    @property
    def backbone_channels(self) -> tuple[int, ...]:
        """Channels of the backbone outputs at ``out_indices`` (index 0 is the stem)."""
        widths = (self.stem_channels, *(s[1] for s in self.stages))
        return tuple(widths[i] for i in self.out_indices)

    @property
    def anchors(self) -> int:
        h, w = self.input_size
        return sum((h // s) * (w // s) for s in self.strides)

    @property
    def outputs(self) -> int:
        return 5 + len(self.classes)

    def problems(self) -> list[str]:
        """Inconsistencies that would build a model the upstream code refuses or mis-wires."""
        found = []
        if self.backbone_channels != self.neck_in_channels:
            found.append(f"the neck takes {list(self.neck_in_channels)} channels, the backbone gives {list(self.backbone_channels)} "
                         f"at out_indices {list(self.out_indices)}")
        if len(self.strides) != len(self.neck_in_channels):
            found.append(f"{len(self.strides)} head strides for {len(self.neck_in_channels)} neck levels")
        if self.head_in_channels != self.neck_out_channels:
            found.append(f"the head takes {self.head_in_channels} channels, the neck gives {self.neck_out_channels}")
        if any(side % max(self.strides) for side in self.input_size):
            found.append(f"input {self.input_size} is not a multiple of the largest stride {max(self.strides)}")
        return found


FULL = YoloxConfig()

# AWML's topology (two-conv stem, ELAN stages of 2/6/6/2 blocks, PAFPN-ELAN, two-conv head branches)
# at a quarter of the widths and 320 x 320 from 640 x 360 frames: the project's own tests run it.
TINY = YoloxConfig(
    input_size=(320, 320),
    widen_factor=0.25,
    neck_in_channels=(32, 64, 128),
    neck_out_channels=32,
    head_in_channels=32,
    head_feat_channels=32,
    camera_size=(360, 640),
    calibration_detections=10,
)
