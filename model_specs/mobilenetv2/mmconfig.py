"""Reading AWML's traffic-light classifier training configs into :class:`ClassifierConfig`, without mmpretrain.

``model_specs.mmconfig`` reads the file and its ``_base_`` chain (the dataset config gives ``classes``);
``to_classifier`` reads the model, the ``data_preprocessor`` and the test pipeline. Keys left out take the
defaults of mmpretrain's and mmcv's classes; anything this spec does not compute (another backbone, out_indices
other than the last layer, another activation, a resize that does not keep the ratio, OpenCV's resize) is refused
by name, as is any key outside :data:`FIELDS` (read, or inert at inference with the reason).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_specs.mmconfig import TORCH_BATCH_NORM, Sections, TrainingConfig
from model_specs.mobilenetv2.config import ClassifierConfig

SUPPORTED = {"model": ("ImageClassifier",), "backbone": ("MobileNetV2",), "neck": ("GlobalAveragePooling",), "head": ("LinearClsHead",)}
SPEC = "mobilenetv2 (config)"
UPSTREAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "backbone": {"widen_factor": 1.0, "out_indices": (7,), "conv_cfg": None, "norm_cfg": {"type": "BN"}, "act_cfg": {"type": "ReLU6"}},
    "neck": {"dim": 2},
    "data_preprocessor": {"mean": None, "std": None, "to_rgb": False, "pad_size_divisor": 1, "pad_value": 0},
    "Resize": {"keep_ratio": False, "backend": "cv2", "interpolation": "bilinear"},
    "Pad": {"pad_to_square": False, "pad_val": {"img": 0, "seg": 255}, "padding_mode": "constant"},
}
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "model": (("backbone", "neck", "head", "data_preprocessor"), {}),
    "backbone": (tuple(UPSTREAM_DEFAULTS["backbone"]), {"norm_eval": "whether training updates BN statistics",
                                                        "with_cp": "activation checkpointing saves training memory"}),
    "neck": (("dim",), {}),
    "head": (("num_classes", "in_channels"), {"loss": "a training loss", "topk": "which accuracies evaluation reports",
                                             "cal_acc": "whether training reports accuracy"}),
    "data_preprocessor": (("mean", "std", "to_rgb", "pad_size_divisor", "pad_value"), {
        "num_classes": "labels only", "to_onehot": "labels only", "batch_augments": "mmpretrain applies them in training only"}),
    "Resize": (("scale", "keep_ratio", "backend", "interpolation"), {}),
    "Pad": (("pad_to_square", "pad_val", "padding_mode"), {}),
}
INERT_TRANSFORMS = {"PackInputs": "packs the sample; its keys change no value", "LoadImageFromFile": "reads the file"}


def to_classifier(config: TrainingConfig, base: ClassifierConfig) -> ClassifierConfig:
    """The model a config describes. ``base`` contributes what a training config cannot say: the export opset."""
    return _Sections(config.path, config.values).classifier(base)


class _Sections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values, FIELDS)
        self.typed("model", self.model)
        for section in ("backbone", "neck", "head"):
            self.typed(section, self.model.get(section))

    def pipeline(self) -> int:
        """The image size the test pipeline makes (keep-ratio Pillow resize, then pad to square)."""
        steps = self.values.get("test_pipeline")
        if not isinstance(steps, list):
            raise self.fail("no test_pipeline: nothing says how the input is made", "keep AWML's test_pipeline")
        found: dict[str, dict[str, Any]] = {}
        for step in steps:
            kind = str(step.get("type", "")).split(".")[-1] if isinstance(step, dict) else None
            if kind in ("Resize", "Pad"):
                self.known(kind, step)
                found[kind] = {**UPSTREAM_DEFAULTS[kind], **step}
            elif kind not in INERT_TRANSFORMS:
                raise self.unsupported("test_pipeline", f"transform {kind} (implemented: Resize, Pad, and {', '.join(INERT_TRANSFORMS)})")
        resize, pad = found.get("Resize"), found.get("Pad")
        if resize is None or pad is None:
            raise self.fail("test_pipeline lacks Resize or Pad: the input's size is not fixed", "keep AWML's Resize and Pad(pad_to_square=True)")
        if not resize["keep_ratio"] or resize["backend"] != "pillow" or resize["interpolation"] != "bilinear":
            raise self.unsupported("test_pipeline.Resize", "anything but keep_ratio=True, backend='pillow', bilinear")
        if not pad["pad_to_square"] or pad["padding_mode"] != "constant" or (pad["pad_val"] not in (0, {"img": 0, "seg": 255})):
            raise self.unsupported("test_pipeline.Pad", "anything but pad_to_square=True with zeros")
        scale = resize["scale"]
        if isinstance(scale, (list, tuple)) and len(scale) == 2 and scale[0] == scale[1]:
            scale = scale[0]
        if not isinstance(scale, int) or isinstance(scale, bool) or scale <= 0:
            raise self.unsupported("test_pipeline.Resize.scale", f"{scale!r} (a square size in pixels is implemented)")
        return scale

    def classifier(self, base: ClassifierConfig) -> ClassifierConfig:
        self.known("model", self.model)
        for section in ("backbone", "neck", "head"):
            self.known(section, self.model[section])
        node = self.model.get("data_preprocessor", self.values.get("data_preprocessor")) or {}
        self.known("data_preprocessor", node)
        pre = {**UPSTREAM_DEFAULTS["data_preprocessor"], **node}
        if pre["mean"] is None or pre["std"] is None or len(pre["mean"]) != 3 or len(pre["std"]) != 3 or int(pre["pad_size_divisor"]) != 1:
            raise self.unsupported("data_preprocessor", "no mean/std, or padding (the graph takes normalised RGB or BGR crops)")
        backbone = {**UPSTREAM_DEFAULTS["backbone"], **self.model["backbone"]}
        neck = {**UPSTREAM_DEFAULTS["neck"], **self.model["neck"]}
        head = self.model["head"]
        if tuple(backbone["out_indices"]) != (7,):
            raise self.unsupported("backbone", f"out_indices {list(backbone['out_indices'])} (conv2, index 7, alone feeds the head)")
        if backbone["conv_cfg"] not in (None, {"type": "Conv2d"}) or backbone["act_cfg"] != {"type": "ReLU6"}:
            raise self.unsupported("backbone", "custom convs or an activation other than ReLU6")
        if int(neck["dim"]) != 2:
            raise self.unsupported("neck", f"GlobalAveragePooling dim={neck['dim']}")
        num_classes = int(self.required("head", head, "num_classes"))
        classes = self.values.get("classes")  # the dataset base's class names, where they fit the head
        if isinstance(classes, (list, tuple)) and len(classes) == num_classes:
            names = tuple(classes)
        else:
            names = tuple(f"class{i}" for i in range(num_classes))
        cfg = dataclasses.replace(
            base,
            classes=names,
            widen_factor=float(backbone["widen_factor"]),
            norm=self.norm("backbone", backbone["norm_cfg"], TORCH_BATCH_NORM),
            image_size=self.pipeline(),
            mean=self.three("data_preprocessor.mean", pre["mean"]),
            std=self.three("data_preprocessor.std", pre["std"]),
            to_rgb=bool(pre["to_rgb"]),
        )
        self.agree("head.in_channels", int(self.required("head", head, "in_channels")), "backbone.widen_factor", cfg.head_in_channels,
                   "make head.in_channels the backbone's conv2 width (1280, or 1280 x widen_factor above 1)")
        return cfg
