"""Reading AWML's calibration-classifier training config into :class:`CalibrationConfig`, without mmpretrain.

``model_specs.mmconfig`` reads the file (AWML's bases ``mmpretrain::_base_/...`` come from mmpretrain
where it is installed, and are named in a note and skipped where not: AWML's model section sets every
key the model needs); ``to_calibration`` reads the model and the test pipeline's transform settings.
Keys left out take the defaults of mmpretrain's classes; depths built of Bottlenecks (50+), deep stems,
average-pool downsampling and dilations are refused by name, as is any key outside :data:`FIELDS` (read, or inert
at inference with the reason) and any test-pipeline transform but AWML's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_specs.calibration.config import BASIC_BLOCK_STAGES, CLASSES, CalibrationConfig
from model_specs.mmconfig import TORCH_BATCH_NORM, Sections, TrainingConfig, type_name

SUPPORTED = {
    "model": ("ImageClassifier",),
    "backbone": ("ResNet",),
    "neck": ("GlobalAveragePooling",),
    "head": ("LinearClsHead",),
}
TRANSFORM = "CalibrationClassificationTransform"

# mmpretrain 1.x's constructor defaults (ResNet, GlobalAveragePooling, LinearClsHead) and AWML's transform's
UPSTREAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "backbone": {"in_channels": 3, "stem_channels": 64, "base_channels": 64, "num_stages": 4, "strides": (1, 2, 2, 2),
                 "dilations": (1, 1, 1, 1), "out_indices": (3,), "style": "pytorch", "deep_stem": False, "avg_down": False,
                 "conv_cfg": None, "norm_cfg": {"type": "BN"}},
    "neck": {"dim": 2},
    "transform": {"mode": "train", "max_depth": 128.0, "dilation_size": 1, "undistort": True, "miscalibration_probability": 0.5,
                  "enable_augmentation": True},
    "data_preprocessor": {"mean": None, "std": None, "to_rgb": False, "pad_size_divisor": 1, "pad_value": 0},
}
SPEC = "calibration (config)"
_VIS = "a folder debug images or files are written to"
# Per section: the keys read (beside ``type``) and the keys inert at inference, with the reason; any other key is
# refused by name (mmconfig.INERT's keys count as inert everywhere).
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "model": (("backbone", "neck", "head", "data_preprocessor"), {}),
    "data_preprocessor": (("mean", "std", "to_rgb", "pad_size_divisor", "pad_value"), {
        "num_classes": "labels only", "to_onehot": "labels only", "batch_augments": "mmpretrain applies them in training only"}),
    "backbone": ((*UPSTREAM_DEFAULTS["backbone"], "depth"), {
        "norm_eval": "whether training updates BN statistics", "with_cp": "activation checkpointing saves training memory",
        "zero_init_residual": "weight initialisation", "drop_path_rate": "stochastic depth: training only"}),
    "neck": (("dim",), {}),
    "head": (("num_classes", "in_channels"), {"loss": "a training loss", "topk": "which accuracies evaluation reports",
                                             "cal_acc": "whether training reports accuracy"}),
    TRANSFORM: (("mode", "max_depth", "dilation_size", "undistort", "miscalibration_probability", "enable_augmentation"), {
        "transform_config": "crop and distortion of training augmentation, and the weight of debug overlays",
        "data_root": "where the dataset's files are", "projection_vis_dir": _VIS, "results_vis_dir": _VIS, "binary_save_dir": _VIS}),
}
INERT_TRANSFORMS = {"PackInputs": "packs the sample; its keys change no value", "LoadImageFromFile": "reads the file"}


def to_calibration(config: TrainingConfig, base: CalibrationConfig) -> CalibrationConfig:
    """The model a config describes. ``base`` contributes what a training config cannot say: the export
    opset (AWML's deploy config)."""
    return _CalibrationSections(config.path, config.values).calibration(base)


class _CalibrationSections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values, FIELDS)
        self.typed("model", self.model)
        for section in ("backbone", "neck", "head"):
            self.typed(section, self.model.get(section))

    def transform(self) -> dict[str, Any]:
        pipeline = self.values.get("test_pipeline")
        steps = pipeline if isinstance(pipeline, list) else []
        for step in steps:
            kind = type_name(step)
            if kind == TRANSFORM:
                self.known(TRANSFORM, step)
            elif kind not in INERT_TRANSFORMS:
                raise self.unsupported("test_pipeline", f"transform {kind} (implemented: {TRANSFORM}, and "
                                       f"{', '.join(INERT_TRANSFORMS)}, which change no pixel)")
        found = [t for t in steps if type_name(t) == TRANSFORM]
        if not found and isinstance(pipeline, list):
            raise self.fail(f"test_pipeline has no {TRANSFORM}: nothing says how the input is made", f"add {TRANSFORM}")
        transform = {**UPSTREAM_DEFAULTS["transform"], **(found[0] if found else {"mode": "test"})}
        if transform["mode"] not in ("test", "val"):
            raise self.unsupported(f"test_pipeline.{TRANSFORM}", f"mode={transform['mode']!r} (test and val, which never "
                                   "augment, are implemented)")
        probability = float(transform["miscalibration_probability"])
        if not 0.0 <= probability <= 1.0:
            raise self.fail(f"test_pipeline.{TRANSFORM}.miscalibration_probability is {probability}, outside [0, 1]",
                            "give a probability")
        return transform

    def preprocessor(self) -> None:
        """mmpretrain's ClsDataPreprocessor, from the model or (as mmpretrain's train script sets it) the top level."""
        node = self.model.get("data_preprocessor", self.values.get("data_preprocessor")) or {}
        self.known("data_preprocessor", node)
        pre = {**UPSTREAM_DEFAULTS["data_preprocessor"], **node}
        if pre["mean"] is not None or pre["std"] is not None or pre["to_rgb"] or int(pre["pad_size_divisor"]) != 1:
            raise self.unsupported("data_preprocessor", "mean/std, a channel swap or padding (the graph takes the transform's "
                                   "channels as they are)")

    def calibration(self, base: CalibrationConfig) -> CalibrationConfig:
        self.known("model", self.model)
        for section in ("backbone", "neck", "head"):
            self.known(section, self.model[section])
        self.preprocessor()
        backbone = {**UPSTREAM_DEFAULTS["backbone"], **self.model["backbone"]}
        neck = {**UPSTREAM_DEFAULTS["neck"], **self.model["neck"]}
        head = self.model["head"]
        depth = int(self.required("backbone", backbone, "depth"))
        if depth not in BASIC_BLOCK_STAGES:
            raise self.unsupported("backbone", f"depth {depth} (implemented: {', '.join(map(str, BASIC_BLOCK_STAGES))}, the BasicBlock depths)")
        stages = int(backbone["num_stages"])
        if backbone["deep_stem"] or backbone["avg_down"] or backbone["style"] != "pytorch" or backbone["conv_cfg"] not in (None, {"type": "Conv2d"}):
            raise self.unsupported("backbone", "a deep stem, avg_down, caffe style or custom convs")
        if tuple(backbone["dilations"])[:stages] != (1,) * stages:
            raise self.unsupported("backbone", f"dilations {list(backbone['dilations'])}")
        if tuple(backbone["out_indices"]) != (stages - 1,):
            raise self.unsupported("backbone", f"out_indices {list(backbone['out_indices'])} (the last stage alone feeds the head)")
        if int(neck["dim"]) != 2:
            raise self.unsupported("neck", f"GlobalAveragePooling dim={neck['dim']}")
        num_classes = int(self.required("head", head, "num_classes"))
        transform = self.transform()
        if not transform["undistort"]:
            raise self.unsupported("test_pipeline", f"{TRANSFORM} with undistort=False (frames are undistorted, then projected without distortion)")
        cfg = dataclasses.replace(
            base,
            in_channels=int(backbone["in_channels"]),
            depth=depth,
            stem_channels=int(backbone["stem_channels"]),
            base_channels=int(backbone["base_channels"]),
            strides=tuple(int(s) for s in backbone["strides"])[:stages],
            norm=self.norm("backbone", backbone["norm_cfg"], TORCH_BATCH_NORM),
            classes=CLASSES if num_classes == len(CLASSES) else tuple(f"class{i}" for i in range(num_classes)),
            max_depth=float(transform["max_depth"]),
            dilation_size=int(transform["dilation_size"]),
            miscalibration_probability=float(transform["miscalibration_probability"]),
        )
        in_channels = int(self.required("head", head, "in_channels"))
        if in_channels != cfg.head_in_channels:
            raise self.fail(f"head.in_channels is {in_channels}, the backbone's last stage gives {cfg.head_in_channels}",
                            "make head.in_channels base_channels x 2^(num_stages - 1)")
        if cfg.in_channels != base.in_channels:
            raise self.unsupported("backbone", f"in_channels={cfg.in_channels} (the transform makes {base.in_channels}: B, G, R, depth, intensity)")
        return cfg
