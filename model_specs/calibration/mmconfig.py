"""Reading AWML's calibration-classifier training config into :class:`CalibrationConfig`, without mmpretrain.

``model_specs.mmconfig`` reads the file (AWML's bases ``mmpretrain::_base_/...`` come from mmpretrain
where it is installed, and are named in a note and skipped where not: AWML's model section sets every
key the model needs); ``to_calibration`` reads the model and the test pipeline's transform settings.
Keys left out take the defaults of mmpretrain's classes; depths built of Bottlenecks (50+), deep stems,
average-pool downsampling and dilations are refused by name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from model_specs.calibration.config import BASIC_BLOCK_STAGES, CLASSES, CalibrationConfig
from model_specs.mmconfig import TORCH_BATCH_NORM, Sections, TrainingConfig

SUPPORTED = {
    "model": ("ImageClassifier",),
    "backbone": ("ResNet",),
    "neck": ("GlobalAveragePooling",),
    "head": ("LinearClsHead",),
}
TRANSFORM = "CalibrationClassificationTransform"

# mmpretrain 1.x's constructor defaults (ResNet, GlobalAveragePooling, LinearClsHead) and AWML's transform's
UPSTREAM_DEFAULTS = {
    "backbone": dict(in_channels=3, stem_channels=64, base_channels=64, num_stages=4, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                     out_indices=(3,), style="pytorch", deep_stem=False, avg_down=False, conv_cfg=None, norm_cfg=dict(type="BN")),
    "neck": dict(dim=2),
    "transform": dict(max_depth=128.0, dilation_size=1, undistort=True),
}
SPEC = "calibration (config)"


def to_calibration(config: TrainingConfig, base: CalibrationConfig) -> CalibrationConfig:
    """The model a config describes. ``base`` contributes what a training config cannot say: the export
    opset (AWML's deploy config)."""
    return _CalibrationSections(config.path, config.values).calibration(base)


class _CalibrationSections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values)
        self.typed("model", self.model)
        for section in ("backbone", "neck", "head"):
            self.typed(section, self.model.get(section))

    def transform(self) -> dict[str, Any]:
        pipeline = self.values.get("test_pipeline")
        steps = [t for t in pipeline if isinstance(t, dict) and str(t.get("type", "")).split(".")[-1] == TRANSFORM] if isinstance(pipeline, list) else []
        return {**UPSTREAM_DEFAULTS["transform"], **(steps[0] if steps else {})}

    def calibration(self, base: CalibrationConfig) -> CalibrationConfig:
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
        )
        in_channels = int(self.required("head", head, "in_channels"))
        if in_channels != cfg.head_in_channels:
            raise self.fail(f"head.in_channels is {in_channels}, the backbone's last stage gives {cfg.head_in_channels}",
                            "make head.in_channels base_channels x 2^(num_stages - 1)")
        if cfg.in_channels != base.in_channels:
            raise self.unsupported("backbone", f"in_channels={cfg.in_channels} (the transform makes {base.in_channels}: B, G, R, depth, intensity)")
        return cfg
