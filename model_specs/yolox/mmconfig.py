"""Reading an AWML/mmdet YOLOX training config into :class:`YoloxConfig`, without mmdet.

``model_specs.mmconfig`` reads the file; ``to_yolox`` reads every field the model, its input and its
evaluation decoder depend on. A key the config leaves out takes the default of the class that would read
it (ELANDarknet, YOLOXPAFPN_ELAN, mmdet's YOLOXHead), and a component this project does not implement
(ASPP stages, depthwise convs, DCN, a normalising data preprocessor) is refused by name, as is any key
outside :data:`FIELDS` (read, or inert at inference with the reason) and any test-pipeline transform that
would change the image. ``num_classes`` is cross-checked against the config's ``classes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model_specs.mmconfig import Sections, TrainingConfig, type_name
from model_specs.yolox.config import P5, YOLOX_BN, YoloxConfig
from model_specs.yolox.model import ACTIVATIONS

SUPPORTED = {
    "model": ("YOLOX",),
    "data_preprocessor": ("DetDataPreprocessor",),
    "backbone": ("ELANDarknet",),
    "neck": ("YOLOXPAFPN_ELAN",),
    "bbox_head": ("YOLOXHead",),
}
ARCHES = {"P5": P5}  # ELANDarknet.arch_settings without ASPP ("P5_ASPP" puts an ASPP in three stages)

# Constructor defaults of the classes that read each section (facts from AWML's ELANDarknet and
# YOLOXPAFPN_ELAN, mmdet 3.3's YOLOXHead and DetDataPreprocessor), for keys a config leaves out.
UPSTREAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "backbone": {"arch": "P5", "deepen_factor": 2.0, "widen_factor": 1.0, "out_indices": (2, 3, 4), "use_depthwise": False,
                 "arch_overwrite": None, "conv_cfg": None, "norm_cfg": {"type": "BN", "momentum": 0.03, "eps": 0.001},
                 "act_cfg": {"type": "ReLU"}},
    "neck": {"num_elan_blocks": 2, "use_depthwise": False, "upsample_cfg": {"scale_factor": 2, "mode": "nearest"}, "conv_cfg": None,
             "norm_cfg": {"type": "BN", "momentum": 0.03, "eps": 0.001}, "act_cfg": {"type": "Swish"}},
    "bbox_head": {"feat_channels": 256, "stacked_convs": 2, "strides": (8, 16, 32), "use_depthwise": False, "dcn_on_last_conv": False,
                  "conv_bias": "auto", "conv_cfg": None, "norm_cfg": {"type": "BN", "momentum": 0.03, "eps": 0.001},
                  "act_cfg": {"type": "Swish"}},
    "data_preprocessor": {"mean": None, "std": None, "bgr_to_rgb": False, "rgb_to_bgr": False, "pad_size_divisor": 1, "pad_value": 0},
    "test_cfg": {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}},
}
SPEC = "yolox (config)"
_LOSS = "a training loss"
# Per section: the keys read (beside ``type``) and the keys inert at inference, with the reason; any other key is
# refused by name (mmconfig.INERT's keys count as inert everywhere).
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "model": (("data_preprocessor", "backbone", "neck", "bbox_head", "test_cfg"), {}),
    "data_preprocessor": (("mean", "std", "bgr_to_rgb", "rgb_to_bgr", "pad_size_divisor", "pad_value"), {
        "batch_augments": "mmdet applies batch augments in training only", "boxtype2tensor": "the boxes' container type",
        "non_blocking": "how batches are copied to the device"}),
    "backbone": ((*UPSTREAM_DEFAULTS["backbone"],), {"norm_eval": "whether training updates BN statistics",
                                                     "aspp_dilations": "read by ASPP stages only, which are refused"}),
    "neck": (("in_channels", "out_channels", *UPSTREAM_DEFAULTS["neck"]), {}),
    "bbox_head": (("num_classes", "in_channels", *UPSTREAM_DEFAULTS["bbox_head"]), {
        "loss_cls": _LOSS, "loss_bbox": _LOSS, "loss_obj": _LOSS, "loss_l1": _LOSS,
        "test_cfg": "the detector replaces it with model.test_cfg"}),
    "test_cfg": (("score_thr", "nms"), {"max_per_img": "YOLOXHead keeps every box NMS keeps (mmdet reads no max_per_img there)"}),
    "test_cfg.nms": (("iou_threshold", "class_agnostic"), {"split_thr": "when batched NMS splits its work: the same boxes"}),
}
# Test-pipeline transforms: read, or inert (touch only loading, ground truth or packing); any other is refused.
TRANSFORMS_READ = {"Resize": ("scale", "keep_ratio"), "Pad": ("pad_to_square", "pad_val")}
TRANSFORMS_INERT = {"LoadImageFromFile": "reads the file (backend_args: from where)", "LoadAnnotations": "loads ground truth only",
                    "PackDetInputs": "packs the sample; its keys change no value"}


def to_yolox(config: TrainingConfig, base: YoloxConfig) -> YoloxConfig:
    """The model a config describes. ``base`` contributes what a training config cannot say: the synthetic
    camera, Autoware's decoder settings, the seeded-weight calibration and the export opset (tier4/YOLOX's)."""
    return _YoloxSections(config.path, config.values).yolox(base)


class _YoloxSections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values, FIELDS)
        self.typed("model", self.model)
        for section in ("data_preprocessor", "backbone", "neck", "bbox_head"):
            self.typed(section, self.model.get(section))

    def section(self, name: str) -> dict[str, Any]:
        self.known(name, self.model[name])
        return {**UPSTREAM_DEFAULTS[name], **self.model[name]}

    def act(self, section: str, node: Mapping[str, Any]) -> str:
        kind = (node.get("act_cfg") or {}).get("type")
        if kind not in ACTIVATIONS:
            raise self.unsupported(section, f"activation {kind} (implemented: {', '.join(ACTIVATIONS)})")
        return kind

    def plain_convs(self, section: str, node: Mapping[str, Any]) -> None:
        if node.get("use_depthwise") or node.get("dcn_on_last_conv") or node.get("conv_cfg") not in (None, {"type": "Conv2d"}):
            raise self.unsupported(section, "depthwise, deformable or custom convs (plain Conv2d is implemented)")

    def stage_settings(self, backbone: Mapping[str, Any]) -> tuple[tuple[int, int, int, float, bool], ...]:
        # a config's own rows may carry a sixth entry (use_aspp), which ARCHES' rows leave out
        rows: Sequence[Sequence[Any]] | None = backbone["arch_overwrite"] or ARCHES.get(backbone["arch"])
        if rows is None:
            raise self.unsupported("backbone", f"arch {backbone['arch']!r} (implemented: {', '.join(ARCHES)})")
        if any(len(row) > 5 and row[5] for row in rows):
            raise self.unsupported("backbone", "ASPP in a stage (use_aspp)")
        return tuple((int(r[0]), int(r[1]), int(r[2]), float(r[3]), bool(r[4])) for r in rows)

    def input_size(self, base: YoloxConfig) -> tuple[tuple[int, int], float]:
        """(height, width) and pad value from the test pipeline's Resize/Pad (mmdet's scale is (w, h))."""
        pipeline = self.values.get("test_pipeline")
        if not isinstance(pipeline, list):
            return base.input_size, base.pad_value
        for step in pipeline:
            kind = type_name(step)
            if kind in TRANSFORMS_READ:
                self.fields(f"test_pipeline.{kind}", step, TRANSFORMS_READ[kind])
            elif kind == "LoadImageFromFile":
                self.fields(f"test_pipeline.{kind}", step, (), {"backend_args": "where files are read from"})
            elif kind not in TRANSFORMS_INERT:
                raise self.unsupported("test_pipeline", f"transform {kind} (it changes the image; implemented: "
                                       f"{', '.join(TRANSFORMS_READ)}, and {', '.join(TRANSFORMS_INERT)}, which change no pixel)")
        resize = next((t for t in pipeline if type_name(t) == "Resize"), None)
        pad = next((t for t in pipeline if type_name(t) == "Pad"), None)
        if resize is None or not resize.get("keep_ratio", False) or pad is None or not pad.get("pad_to_square", False):
            raise self.unsupported("test_pipeline", "an input other than a keep-ratio Resize and a Pad to square (a letterbox)")
        width, height = (int(v) for v in resize["scale"])
        pad_val = pad.get("pad_val", 0)  # mmdet's Pad: a number, or dict(img=number or per-channel values)
        img = pad_val.get("img", 0) if isinstance(pad_val, dict) else pad_val
        values = set(img) if isinstance(img, (list, tuple)) else {img}
        if len(values) != 1:
            raise self.unsupported("test_pipeline", f"a per-channel pad value {pad_val}")
        side = max(width, height)
        return (side, side), float(values.pop())

    def yolox(self, base: YoloxConfig) -> YoloxConfig:
        pre = self.section("data_preprocessor")
        if pre["mean"] is not None or pre["std"] is not None or pre["bgr_to_rgb"] or pre["rgb_to_bgr"]:
            raise self.unsupported("data_preprocessor", "mean/std or a channel swap (the deployed graph takes raw BGR 0-255)")
        backbone, neck, head = self.section("backbone"), self.section("neck"), self.section("bbox_head")
        for name, node in (("backbone", backbone), ("neck", neck), ("bbox_head", head)):
            self.plain_convs(name, node)
        if neck["upsample_cfg"] != {"scale_factor": 2, "mode": "nearest"}:
            raise self.unsupported("neck", f"upsample_cfg {neck['upsample_cfg']} (x2 nearest is implemented)")
        if head["conv_bias"] not in ("auto", False):
            raise self.unsupported("bbox_head", f"conv_bias={head['conv_bias']!r} (the stacked convs have no bias before BN)")
        self.known("model", self.model)
        test = {**UPSTREAM_DEFAULTS["test_cfg"], **(self.model.get("test_cfg") or {})}
        self.known("test_cfg", test)
        nms = test.get("nms") or {}
        self.known("test_cfg.nms", nms)
        if nms.get("type", "nms") != "nms":
            raise self.unsupported("test_cfg", f"nms type {nms.get('type')!r} (greedy 'nms' is implemented)")
        if nms.get("class_agnostic", False):
            raise self.unsupported("test_cfg.nms", "class_agnostic=True (mmdet's class-aware batched NMS is implemented)")
        num_classes = int(self.required("bbox_head", head, "num_classes"))
        names = self.values.get("classes")
        if isinstance(names, (list, tuple)):
            self.agree("bbox_head.num_classes", num_classes, f"the config's classes ({len(names)} names)", len(names),
                       "make num_classes the number of classes")
        classes = tuple(names) if isinstance(names, (list, tuple)) else (
            base.classes if len(base.classes) == num_classes else tuple(f"class{i}" for i in range(num_classes)))
        input_size, pad_value = self.input_size(base)
        cfg = dataclasses.replace(
            base,
            input_size=input_size,
            pad_value=pad_value,
            classes=classes,
            stage_settings=self.stage_settings(backbone),
            deepen_factor=float(backbone["deepen_factor"]),
            widen_factor=float(backbone["widen_factor"]),
            out_indices=tuple(int(i) for i in backbone["out_indices"]),
            backbone_act=self.act("backbone", backbone),
            backbone_norm=self.norm("backbone", backbone["norm_cfg"], YOLOX_BN),
            neck_in_channels=tuple(int(c) for c in self.required("neck", neck, "in_channels")),
            neck_out_channels=int(self.required("neck", neck, "out_channels")),
            neck_elan_blocks=int(neck["num_elan_blocks"]),
            neck_act=self.act("neck", neck),
            neck_norm=self.norm("neck", neck["norm_cfg"], YOLOX_BN),
            head_in_channels=int(self.required("bbox_head", head, "in_channels")),
            head_feat_channels=int(head["feat_channels"]),
            head_stacked_convs=int(head["stacked_convs"]),
            head_act=self.act("bbox_head", head),
            head_norm=self.norm("bbox_head", head["norm_cfg"], YOLOX_BN),
            strides=tuple(int(s) for s in head["strides"]),
            eval_score_threshold=float(test["score_thr"]),
            eval_nms_iou=float(nms.get("iou_threshold", UPSTREAM_DEFAULTS["test_cfg"]["nms"]["iou_threshold"])),
        )
        divisor = int(pre["pad_size_divisor"])
        if any(side % divisor for side in cfg.input_size):
            raise self.unsupported("data_preprocessor", f"pad_size_divisor={divisor} padding the {cfg.input_size} input again "
                                   "(the deployed graph takes the letterboxed image as it is)")
        problems = cfg.problems()
        if problems:
            raise self.fail("; ".join(problems), "make the backbone, neck and head widths agree")
        return cfg
