"""Reading AWML's FRNet training configs into :class:`FRNetConfig`, without mmdet3d.

``model_specs.mmconfig`` reads the file and its ``_base_`` chain; ``to_frnet`` reads the model (FRNet's data
preprocessor, FrustumFeatureEncoder, FRNetBackbone, FRHead, FrustumHeads) and the test pipeline's
RangeInterpolation. Keys left out take AWML's classes' defaults; what this spec does not compute (another
activation, dilations, norms other than BatchNorm, a sensor whose two images disagree) is refused by name, as is
any key outside :data:`FIELDS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_specs.frnet.config import CLASSES, RESNET_STAGES, FRNetConfig
from model_specs.mmconfig import Sections, TrainingConfig

SPEC = "frnet (config)"
SUPPORTED = {"model": ("FRNet",), "data_preprocessor": ("FrustumRangePreprocessor",), "voxel_encoder": ("FrustumFeatureEncoder",),
             "backbone": ("FRNetBackbone",), "decode_head": ("FRHead",), "auxiliary_head": ("FrustumHead",)}
_LOSS = {"loss_ce": "a training loss", "loss_lovasz": "a training loss", "loss_boundary": "a training loss", "loss_dice": "a training loss"}
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "model": (("data_preprocessor", "voxel_encoder", "backbone", "decode_head", "auxiliary_head"), {"test_cfg": "inference defaults only"}),
    "data_preprocessor": (("H", "W", "fov_up", "fov_down", "ignore_index"), {"non_blocking": "how tensors reach the device"}),
    "voxel_encoder": (("in_channels", "feat_channels", "with_distance", "with_cluster_center", "norm_cfg", "with_pre_norm", "feat_compression"), {}),
    "backbone": (("in_channels", "point_in_channels", "output_shape", "depth", "stem_channels", "num_stages", "out_channels", "strides",
                  "dilations", "fuse_channels", "norm_cfg", "point_norm_cfg", "act_cfg", "conv_cfg"), {}),
    "decode_head": (("in_channels", "middle_channels", "norm_cfg", "channels", "dropout_ratio", "num_classes", "ignore_index",
                     "conv_seg_kernel_size"), _LOSS),
    "auxiliary_head": (("channels", "num_classes", "dropout_ratio", "conv_seg_kernel_size", "ignore_index", "indices"), _LOSS),
    "RangeInterpolation": (("H", "W", "fov_up", "fov_down", "ignore_index"), {}),
}
INERT_TRANSFORMS = ("LoadPointsWithIdentifierFromFile", "LoadSegAnnotationsWithIdentifier3D", "Pack3DDetInputs")


def to_frnet(config: TrainingConfig, base: FRNetConfig) -> FRNetConfig:
    """The model a config describes; ``base`` contributes what a training config cannot say (opset, profile)."""
    return _Sections(config.path, config.values).frnet(base)


class _Sections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values, FIELDS)
        self.typed("model", self.model)
        for section in ("data_preprocessor", "voxel_encoder", "backbone", "decode_head"):
            self.typed(section, self.model.get(section))
        for head in self.model.get("auxiliary_head") or []:
            self.typed("auxiliary_head", head)

    def interpolation(self) -> dict[str, Any]:
        steps = self.values.get("test_pipeline") or []
        found = None
        for step in steps:
            kind = str(step.get("type", "")).split(".")[-1]
            if kind == "RangeInterpolation":
                self.known(kind, step)
                found = step
            elif kind not in INERT_TRANSFORMS:
                raise self.unsupported("test_pipeline", f"transform {kind} (implemented: RangeInterpolation, and {', '.join(INERT_TRANSFORMS)})")
        if found is None:
            raise self.fail("test_pipeline has no RangeInterpolation: the deployed pre-processing is not the config's", "keep AWML's test_pipeline")
        return found

    def frnet(self, base: FRNetConfig) -> FRNetConfig:
        model = self.model
        self.known("model", model)
        pre, encoder, backbone, head = (model[k] for k in ("data_preprocessor", "voxel_encoder", "backbone", "decode_head"))
        for section, node in (("data_preprocessor", pre), ("voxel_encoder", encoder), ("backbone", backbone), ("decode_head", head)):
            self.known(section, node)
        aux = model.get("auxiliary_head") or []
        for node in aux:
            self.known("auxiliary_head", node)
        interpolation = self.interpolation()
        depth = int(self.required("backbone", backbone, "depth"))
        if depth not in RESNET_STAGES:
            raise self.unsupported("backbone", f"depth {depth} (FRNetBackbone has 18 and 34)")
        if backbone.get("act_cfg", {"type": "LeakyReLU"}).get("type") != "HSwish":
            raise self.unsupported("backbone.act_cfg", f"{backbone.get('act_cfg')} (AWML's HSwish is implemented)")
        if tuple(backbone.get("dilations", (1, 1, 1, 1))) != (1, 1, 1, 1) or backbone.get("conv_cfg") is not None:
            raise self.unsupported("backbone", "dilations or custom convs")
        if int(backbone.get("num_stages", 4)) != 4:
            raise self.unsupported("backbone", f"num_stages {backbone.get('num_stages')}")
        norm = self.norm("backbone", backbone.get("norm_cfg", {"type": "BN"}))
        bn1d = {"type": "BN1d"}
        others = (("backbone.point_norm_cfg", backbone.get("point_norm_cfg", bn1d)), ("voxel_encoder.norm_cfg", encoder.get("norm_cfg", bn1d)),
                  ("decode_head.norm_cfg", head.get("norm_cfg", bn1d)))
        for section, node in others:
            self.agree(f"{section} (eps, momentum)", self.norm(section, node), "backbone.norm_cfg", norm, "use one norm everywhere, as AWML does")
        num_classes = int(self.required("decode_head", head, "num_classes"))
        classes = CLASSES if num_classes == len(CLASSES) else tuple(f"class{i}" for i in range(num_classes))
        cfg = dataclasses.replace(
            base, classes=classes, ignore_index=int(head.get("ignore_index", pre["ignore_index"])),
            lidar_h=int(pre["H"]), range_w=int(interpolation["W"]), frustum_w=int(pre["W"]), fov_up=float(pre["fov_up"]),
            fov_down=float(pre["fov_down"]),
            point_features=int(encoder.get("in_channels", 4)), feat_channels=tuple(int(c) for c in encoder["feat_channels"]),
            with_distance=bool(encoder.get("with_distance", False)), with_cluster_center=bool(encoder.get("with_cluster_center", False)),
            with_pre_norm=bool(encoder.get("with_pre_norm", False)), feat_compression=int(encoder["feat_compression"]),
            depth=depth, stem_channels=int(backbone.get("stem_channels", 128)),
            out_channels=tuple(int(c) for c in backbone.get("out_channels", (128,) * 4)),
            strides=tuple(int(s) for s in backbone.get("strides", (1, 2, 2, 2))),
            fuse_channels=tuple(int(c) for c in backbone.get("fuse_channels", (256, 128))),
            middle_channels=tuple(int(c) for c in head["middle_channels"]), channels=int(head["channels"]),
            auxiliary_heads=tuple(int(a.get("indices", 0)) for a in aux), norm=norm)
        sensor = (int(interpolation["H"]), float(interpolation["fov_up"]), float(interpolation["fov_down"]))
        self.agree("RangeInterpolation (H, fov_up, fov_down)", sensor, "data_preprocessor", (cfg.lidar_h, cfg.fov_up, cfg.fov_down),
                   "give both images the sensor's rings and field of view")
        self.agree("backbone.output_shape", tuple(backbone.get("output_shape", ())), "data_preprocessor (H, W)", (cfg.lidar_h, cfg.frustum_w),
                   "make the backbone's image the frustum image")
        self.agree("backbone.in_channels", int(backbone["in_channels"]), "voxel_encoder.feat_compression", cfg.feat_compression, "match them")
        self.agree("backbone.point_in_channels", int(backbone["point_in_channels"]), "stem_channels + feat_channels[-1]", cfg.point_in_channels,
                   "match them")
        self.agree("decode_head.in_channels", int(head["in_channels"]), "backbone.fuse_channels[-1]", cfg.fuse_channels[-1], "match them")
        if float(head.get("dropout_ratio", 0.5)) != 0 or int(head.get("conv_seg_kernel_size", 1)) != 1:
            raise self.unsupported("decode_head", "dropout or a conv_seg kernel other than 1 (AWML's head: Linear, no dropout)")
        return cfg
