"""Reading an AWML/mmdet3d training config into :class:`CenterPointConfig`, without mmdet3d.

The file is read by ``model_specs.mmconfig`` (mmengine when installed, else a restricted reader with
mmengine's semantics); ``to_centerpoint`` then reads every field the model, its input points and its
decoding depend on. A key a config leaves out takes the default of the mmdet3d class that would read it (not
this project's), every component type is checked by name (a model this project does not implement is
refused, never approximated), and every key of a section is either read, listed in :data:`FIELDS` as inert at
inference with the reason, or refused by name. Fields that repeat another's value are cross-checked: the
channels each layer takes against the layer before, the scatter's ``output_shape`` and ``test_cfg``'s grid
against the voxel grid, ``num_class`` against the class names, the coder's stride against the network's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.convnext_pc import MMPRETRAIN_STAGES, ConvNeXtPCConfig
from model_specs.centerpoint.mmpipeline import point_input
from model_specs.mmconfig import MAX_EXPONENT, Sections, TrainingConfig, _Reader, read_config, type_name  # noqa: F401 (re-exported)

# Component types this project implements, by config section. AWML registers subclasses under
# mmdet3d's own names (SECOND, SECONDFPN, CenterHead, CenterPointBBoxCoder) that add layer freezing,
# class-wise losses and a y-axis decode option, none of which changes inference; CustomSeparateHead
# only sets the heatmap bias at construction.
SUPPORTED = {
    "model": ("CenterPoint",),
    "data_preprocessor": ("Det3DDataPreprocessor",),
    "pts_voxel_encoder": ("PillarFeatureNet", "BackwardPillarFeatureNet"),
    "pts_middle_encoder": ("PointPillarsScatter",),
    "pts_backbone": ("SECOND", "ConvNeXt_PC"),
    "pts_neck": ("SECONDFPN",),
    "pts_bbox_head": ("CenterHead",),
    "separate_head": ("SeparateHead", "CustomSeparateHead"),
    "bbox_coder": ("CenterPointBBoxCoder",),
}
_HEADS = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))  # common_heads: name, channels (decode's)
BOX_CODE_SIZE = 9  # x, y, z, l, w, h, yaw, vx, vy: what the heads above decode to

# mmdet3d 1.4's constructor defaults (facts from mmdet3d's signatures), for keys a config leaves out.
MMDET3D_DEFAULTS: dict[str, dict[str, Any]] = {
    "pillar_feature_net": {"in_channels": 4, "feat_channels": (64,), "with_distance": False, "with_cluster_center": True,
                           "with_voxel_center": True, "mode": "max", "legacy": True, "voxel_size": (0.2, 0.2, 4),
                           "point_cloud_range": (0, -40, -3, 70.4, 40, 1), "norm_cfg": {"type": "BN1d", "eps": 1e-3, "momentum": 0.01}},
    "second": {"in_channels": 128, "out_channels": (128, 128, 256), "layer_nums": (3, 5, 5), "layer_strides": (2, 2, 2),
               "norm_cfg": {"type": "BN", "eps": 1e-3, "momentum": 0.01}, "conv_cfg": {"type": "Conv2d", "bias": False}},
    "second_fpn": {"in_channels": (128, 128, 256), "out_channels": (256, 256, 256), "upsample_strides": (1, 2, 4),
                   "use_conv_for_no_stride": False, "norm_cfg": {"type": "BN", "eps": 1e-3, "momentum": 0.01},
                   "upsample_cfg": {"type": "deconv", "bias": False}, "conv_cfg": {"type": "Conv2d", "bias": False}},
    "center_head": {"share_conv_channel": 64, "num_heatmap_convs": 2, "norm_cfg": {"type": "BN2d"}, "norm_bbox": True,
                    "conv_cfg": {"type": "Conv2d"}, "bias": "auto", "common_heads": {}},
    "separate_head": {"head_conv": 64, "final_kernel": 1, "init_bias": -2.19, "norm_cfg": {"type": "BN2d"}, "conv_cfg": {"type": "Conv2d"},
                      "bias": "auto"},
    "bbox_coder": {"max_num": 100, "score_threshold": None, "post_center_range": None, "code_size": 9, "y_axis_reference": False},
    "voxel_layer": {"max_voxels": 20000, "deterministic": True},
    "data_preprocessor": {"voxel": False, "voxel_type": "hard"},
    # AWML's ConvNeXt_PC signature (projects/ConvNeXt_PC/backbones/convnext_pc.py at 7a6ec07)
    "convnext_pc": {"in_channels": 3, "norm_cfg": {"type": "LN2d", "eps": 1e-6}, "act_cfg": {"type": "GELU"}, "linear_pw_conv": True,
                    "layer_scale_init_value": 1e-6, "out_indices": -1, "gap_before_final_norm": True, "first_downsample": 1,
                    "large_arch": None},
}
# What ConvNeXt_PC's inference does not depend on: stochastic depth, freezing, activation checkpointing, the
# stem size of the parent class (its stem is replaced), and weights loading.
_CONVNEXT_TRAINING_ONLY = ("drop_path_rate", "frozen_stages", "with_cp", "stem_patch_size", "init_cfg")

_TRAINING = "a training setting"
_LOSS = "a training loss"
_CIRCLE = "read by rotate NMS only; nms_type is 'circle'"
# Per component type (or, for an untyped section, per section): the keys read (beside ``type``) and the keys inert at
# inference, with the reason. Any other key is refused by name (mmconfig.INERT's keys, weight initialisation and the
# like, count as inert everywhere). A type added to SUPPORTED needs its row here.
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "CenterPoint": (("data_preprocessor", "pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck", "pts_bbox_head",
               "test_cfg"), {}),
    "Det3DDataPreprocessor": (("voxel", "voxel_type", "voxel_layer"), {"non_blocking": "how batches are copied to the device",
                                                                   "batch_first": "the batch's coordinate layout"}),
    "voxel_layer": (("max_num_points", "voxel_size", "point_cloud_range", "max_voxels", "deterministic"), {}),
    "PillarFeatureNet": (tuple(MMDET3D_DEFAULTS["pillar_feature_net"]), {}),
    "PointPillarsScatter": (("in_channels", "output_shape"), {}),
    "SECOND": (tuple(MMDET3D_DEFAULTS["second"]), {"with_cp": "activation checkpointing saves training memory"}),
    "SECONDFPN": (tuple(MMDET3D_DEFAULTS["second_fpn"]), {}),
    "CenterHead": (("in_channels", "tasks", "bbox_coder", "separate_head", *MMDET3D_DEFAULTS["center_head"]), {
        "loss_cls": _LOSS, "loss_bbox": _LOSS, "freeze_shared_conv": _TRAINING, "freeze_task_heads": _TRAINING,
        "test_cfg": "the detector replaces it with model.test_cfg.pts"}),
    "pts_bbox_head.tasks": (("num_class", "class_names"), {}),
    "SeparateHead": (tuple(MMDET3D_DEFAULTS["separate_head"]), {
        "in_channels": "CenterHead sets it to share_conv_channel", "heads": "CenterHead sets it from common_heads",
        "num_cls": "CenterHead sets it from the task's classes"}),
    "CenterPointBBoxCoder": (("pc_range", "voxel_size", "out_size_factor", *MMDET3D_DEFAULTS["bbox_coder"]), {}),
    "test_cfg": (("pts",), {}),
    "test_cfg.pts": (("nms_type", "min_radius", "post_max_size", "grid_size", "voxel_size", "pc_range", "out_size_factor",
                      "score_threshold", "post_center_limit_range"), {
        "nms_thr": _CIRCLE, "pre_max_size": _CIRCLE, "max_per_img": "read by no mmdet3d CenterHead code",
        "max_pool_nms": "read by no mmdet3d CenterHead code"}),
}
FIELDS["CustomSeparateHead"] = FIELDS["SeparateHead"]  # AWML's subclass only sets the heatmap bias at construction
# AWML's BackwardPillarFeatureNet takes PillarFeatureNet's arguments (it leaves out the pillar centre's z offset)
FIELDS["BackwardPillarFeatureNet"] = FIELDS["PillarFeatureNet"]
FIELDS["ConvNeXt_PC"] = (("in_channels", "out_channels", "depths", "out_indices", *MMDET3D_DEFAULTS["convnext_pc"]),
                         dict.fromkeys(_CONVNEXT_TRAINING_ONLY, "a training setting of ConvNeXt_PC"))


def to_centerpoint(config: TrainingConfig, base: CenterPointConfig) -> CenterPointConfig:
    """The model a config describes, as a :class:`CenterPointConfig`.

    ``base`` contributes only what a training config cannot say: the TensorRT profile's min/opt
    pillars (capped at the config's max), the seeded-weight calibration and the export opset.
    """
    return _ConfigFields(config.path, config.values).centerpoint(base)


class _ConfigFields(Sections):
    """One config's sections, read with the defaults mmdet3d would apply."""

    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__("centerpoint (config)", SUPPORTED, path, values, FIELDS)
        model = self.model
        self.typed("model", model)
        for section in ("data_preprocessor", "pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"):
            self.typed(section, model.get(section))
        head = model["pts_bbox_head"]
        self.typed("separate_head", head.get("separate_head"))
        self.typed("bbox_coder", head.get("bbox_coder"))

    def point_features(self, in_channels: int, pcr: tuple[float, ...], base: CenterPointConfig) -> dict[str, Any]:
        """The encoder's point columns and the sweeps they come from, as ``CenterPointConfig`` fields."""
        pipeline = self.values.get("test_pipeline")
        if not isinstance(pipeline, list):  # a model-only config: keep the spec's reading if it fits
            if in_channels != base.point_features:
                raise self.fail(f"pts_voxel_encoder.in_channels is {in_channels} and the config has no test_pipeline "
                                "to say what the point features are")
            return {}
        points = point_input(self, pipeline, pcr, in_channels)
        return {"point_feature_names": points.names, "past_sweeps": points.past_sweeps, "remove_close": points.remove_close,
                "pad_empty_sweeps": points.pad_empty_sweeps, "file_point_features": points.file_columns}

    def centerpoint(self, base: CenterPointConfig) -> CenterPointConfig:
        defaults = MMDET3D_DEFAULTS
        model = self.model
        self.known("model", model)
        for section in ("pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"):
            self.known(section, model[section])
        preprocessor = {**defaults["data_preprocessor"], **model["data_preprocessor"]}
        self.known("data_preprocessor", preprocessor)
        encoder = {**defaults["pillar_feature_net"], **model["pts_voxel_encoder"]}
        convnext = self.convnext_pc(model["pts_backbone"], int(encoder["feat_channels"][-1]))
        backbone = {**defaults["second"], **model["pts_backbone"]}
        if convnext is not None:  # the neck reads the output stages' widths; stage i is at stride 2**i
            backbone["out_channels"] = convnext.out_channels
        neck = {**defaults["second_fpn"], **model["pts_neck"]}
        head = {**defaults["center_head"], **model["pts_bbox_head"]}
        separate = {**defaults["separate_head"], **head["separate_head"]}
        coder = {**defaults["bbox_coder"], **head["bbox_coder"]}
        self.known("separate_head", separate)
        self.known("bbox_coder", coder)
        if not preprocessor["voxel"]:
            raise self.unsupported("data_preprocessor", "voxel=False (the points reach the model voxelized)")
        if preprocessor["voxel_type"] != "hard":
            raise self.unsupported("data_preprocessor", f"voxel_type={preprocessor['voxel_type']!r}")
        voxel_layer = {**defaults["voxel_layer"], **(preprocessor.get("voxel_layer") or {})}
        self.known("voxel_layer", voxel_layer)
        if not voxel_layer["deterministic"]:
            raise self.unsupported("data_preprocessor.voxel_layer", "deterministic=False (mmcv's deterministic voxel order "
                                   "is implemented; the other keeps a different set of voxels past max_voxels)")
        test = (model.get("test_cfg") or {}).get("pts") or {}
        self.known("test_cfg", model.get("test_cfg"))
        self.known("test_cfg.pts", test)
        if encoder["legacy"] or encoder["with_distance"] or not encoder["with_cluster_center"] or not encoder["with_voxel_center"]:
            raise self.unsupported("pts_voxel_encoder", "decoration other than cluster-centre + voxel-centre (x, y, z) offsets "
                                   "with legacy=False")
        if encoder["mode"] != "max":
            raise self.unsupported("pts_voxel_encoder", f"mode={encoder['mode']!r}")
        tasks = head.get("tasks", [])
        if len(tasks) != 1:
            raise self.unsupported("pts_bbox_head", f"{len(tasks)} tasks (this model has one CenterHead task)")
        self.known("pts_bbox_head.tasks", tasks[0])
        class_names = tuple(self.required("pts_bbox_head.tasks[0]", tasks[0], "class_names"))
        if "num_class" in tasks[0]:
            self.agree("pts_bbox_head.tasks[0].num_class", int(tasks[0]["num_class"]), "its class_names", len(class_names),
                       "make num_class the number of class_names (mmdet3d builds the heatmap from class_names)")
        common = head["common_heads"]
        head_channels = {k: next(iter(v), None) for k, v in common.items()}  # common_heads: name -> (channels, convs)
        if head_channels != dict(_HEADS) or len({v[1] for v in common.values()} | {head["num_heatmap_convs"]}) != 1:
            raise self.unsupported("pts_bbox_head", f"common_heads {common} (implemented: "
                                   f"{', '.join(f'{n}=({c}, N)' for n, c in _HEADS)} with one N shared with num_heatmap_convs)")
        if not head["norm_bbox"]:
            raise self.unsupported("pts_bbox_head", "norm_bbox=False")
        if int(coder["code_size"]) != BOX_CODE_SIZE:
            raise self.unsupported("bbox_coder", f"code_size={coder['code_size']} (the heads decode to {BOX_CODE_SIZE} values: "
                                   "x, y, z, l, w, h, yaw, vx, vy; mmdet3d refuses the boxes otherwise)")
        if coder["post_center_range"] is None:
            raise self.unsupported("bbox_coder", "post_center_range=None (mmdet3d's coder raises NotImplementedError without it)")
        nms_type = self.required("test_cfg.pts", test, "nms_type")
        if nms_type != "circle":
            raise self.unsupported("test_cfg.pts", f"nms_type={nms_type!r}")
        pcr = self.six("data_preprocessor.voxel_layer.point_cloud_range",
                       self.required("data_preprocessor.voxel_layer", voxel_layer, "point_cloud_range"))
        size = self.three("data_preprocessor.voxel_layer.voxel_size", self.required("data_preprocessor.voxel_layer", voxel_layer, "voxel_size"))
        fix = "make the voxel layer, the encoder, the bbox coder and test_cfg agree"
        self.agree("pts_voxel_encoder.point_cloud_range", tuple(float(v) for v in encoder["point_cloud_range"]),
                   "the voxel layer", pcr, fix)
        self.agree("pts_voxel_encoder.voxel_size", tuple(float(v) for v in encoder["voxel_size"]), "the voxel layer", size, fix)
        # the coder reads the x and y of its range and voxel size
        self.agree("bbox_coder.pc_range[:2]", tuple(float(v) for v in self.required("bbox_coder", coder, "pc_range"))[:2],
                   "the voxel layer", pcr[:2], fix)
        self.agree("bbox_coder.voxel_size[:2]", tuple(float(v) for v in self.required("bbox_coder", coder, "voxel_size"))[:2],
                   "the voxel layer", size[:2], fix)
        new = dataclasses.replace(base, point_cloud_range=pcr, voxel_size=size)
        nx, ny, nz = new.grid_size
        max_voxels = voxel_layer["max_voxels"]
        max_voxels = int(max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels)  # [1]: mmcv's test-time value
        pfn_channels = tuple(int(c) for c in encoder["feat_channels"])
        self.channels(model["pts_middle_encoder"], backbone, neck, head, pfn_channels, (ny, nx))
        out_size_factor = int(self.required("bbox_coder", coder, "out_size_factor"))
        self.stride(self.output_strides(backbone, convnext), neck, out_size_factor)
        self.test_settings(test, (nx, ny, nz), size, pcr, out_size_factor, coder)
        new = dataclasses.replace(
            new,
            max_points_per_voxel=int(self.required("data_preprocessor.voxel_layer", voxel_layer, "max_num_points")),
            max_voxels=max_voxels,
            min_voxels=min(base.min_voxels, max_voxels),
            opt_voxels=min(base.opt_voxels, max_voxels),
            **self.point_features(int(encoder["in_channels"]), pcr, base),
            pfn_channels=pfn_channels,
            pfn_norm=self.norm("pts_voxel_encoder", encoder["norm_cfg"]),
            voxel_center_z=type_name(model["pts_voxel_encoder"]) != "BackwardPillarFeatureNet",
            convnext=convnext,
            backbone_channels=tuple(int(c) for c in backbone["out_channels"]),
            backbone_layers=tuple(int(n) for n in backbone["layer_nums"]),
            backbone_strides=tuple(int(s) for s in backbone["layer_strides"]),
            backbone_norm=self.norm("pts_backbone", backbone["norm_cfg"]),
            backbone_conv_bias=self.conv_bias("pts_backbone.conv_cfg", backbone["conv_cfg"]),
            neck_channels=tuple(int(c) for c in neck["out_channels"]),
            neck_upsample_strides=tuple(float(s) for s in neck["upsample_strides"]),
            neck_norm=self.norm("pts_neck", neck["norm_cfg"]),
            use_conv_for_no_stride=bool(neck["use_conv_for_no_stride"]),
            neck_deconv_bias=self.conv_bias("pts_neck.upsample_cfg", neck["upsample_cfg"], ("deconv",)),
            neck_conv_bias=self.conv_bias("pts_neck.conv_cfg", neck["conv_cfg"]),
            head_shared_channels=int(head["share_conv_channel"]),
            head_conv_channels=int(separate["head_conv"]),
            head_num_conv=int(head["num_heatmap_convs"]),
            head_final_kernel=int(separate["final_kernel"]),
            head_norm=self.norm("pts_bbox_head", head["norm_cfg"]),
            head_shared_conv_bias=self.module_bias("pts_bbox_head", head),
            head_conv_bias=self.module_bias("separate_head", separate),
            class_names=class_names,
            heatmap_init_bias=float(separate["init_bias"]),
            out_size_factor=out_size_factor,
            score_threshold=float(coder["score_threshold"]) if coder["score_threshold"] is not None else 0.0,
            max_detections_pre_nms=int(coder["max_num"]),
            post_center_range=self.six("bbox_coder.post_center_range", coder["post_center_range"]),
            y_axis_reference=bool(coder["y_axis_reference"]),
            nms_min_radius=float(self.required("test_cfg.pts", test, "min_radius")[0]),
            post_max_size=int(self.required("test_cfg.pts", test, "post_max_size")),
        )
        if self.norm("separate_head", separate["norm_cfg"]) != new.head_norm:  # one norm for every head conv is implemented
            raise self.unsupported("separate_head", f"norm_cfg {separate['norm_cfg']} other than the CenterHead's {head['norm_cfg']}")
        return new

    def module_bias(self, section: str, node: Mapping[str, Any]) -> bool:
        """mmcv ConvModule's bias: ``'auto'`` is none before a norm (every ConvModule here has one)."""
        self.conv_bias(f"{section}.conv_cfg", {k: v for k, v in (node["conv_cfg"] or {"type": "Conv2d"}).items() if k != "bias"})
        if "bias" in (node["conv_cfg"] or {}):
            raise self.unsupported(f"{section}.conv_cfg", "bias (ConvModule takes its bias from the bias argument; mmcv refuses both)")
        bias = node["bias"]
        if bias not in ("auto", True, False):
            raise self.unsupported(section, f"bias={bias!r}")
        return bias is True

    def channels(self, scatter: Mapping[str, Any], backbone: Mapping[str, Any], neck: Mapping[str, Any], head: Mapping[str, Any],
                 pfn_channels: tuple[int, ...], grid_yx: tuple[int, int]) -> None:
        """Every ``in_channels`` against the layer before, the scatter's canvas against the voxel grid, the list lengths."""
        fix = "make each in_channels the out_channels of the layer before"
        self.agree("pts_middle_encoder.in_channels", int(self.required("pts_middle_encoder", scatter, "in_channels")),
                   "pts_voxel_encoder.feat_channels[-1]", pfn_channels[-1], fix)
        self.agree("pts_middle_encoder.output_shape", tuple(int(v) for v in self.required("pts_middle_encoder", scatter, "output_shape")),
                   "the voxel grid (ny, nx) of point_cloud_range / voxel_size", grid_yx,
                   "set output_shape to (ny, nx) of the voxel grid")
        self.agree("pts_backbone.in_channels", int(backbone["in_channels"]), "pts_voxel_encoder.feat_channels[-1]", pfn_channels[-1], fix)
        stages = len(backbone["out_channels"])
        if type_name(backbone) == "SECOND" and not len(backbone["layer_nums"]) == len(backbone["layer_strides"]) == stages:
            raise self.fail("pts_backbone: out_channels, layer_nums and layer_strides differ in length (mmdet3d asserts they agree)")
        if not len(neck["in_channels"]) == len(neck["out_channels"]) == len(neck["upsample_strides"]) == stages:
            raise self.fail(f"pts_neck: in_channels, out_channels and upsample_strides must have one entry per backbone stage ({stages})")
        self.agree("pts_neck.in_channels", tuple(int(c) for c in neck["in_channels"]), "pts_backbone.out_channels",
                   tuple(int(c) for c in backbone["out_channels"]), fix)
        self.agree("pts_bbox_head.in_channels", self.required("pts_bbox_head", head, "in_channels"), "sum(pts_neck.out_channels)",
                   sum(int(c) for c in neck["out_channels"]), fix)

    @staticmethod
    def output_strides(backbone: Mapping[str, Any], convnext: ConvNeXtPCConfig | None) -> tuple[int, ...]:
        """Each backbone output's stride against the canvas: SECOND's running product of its layer strides,
        ConvNeXt_PC's 2**i for output stage i."""
        if convnext is not None:
            return tuple(2 ** i for i in convnext.out_indices)
        total, strides = 1, []
        for layer in backbone["layer_strides"]:
            total *= int(layer)
            strides.append(total)
        return tuple(strides)

    def stride(self, output_strides: tuple[int, ...], neck: Mapping[str, Any], out_size_factor: int) -> None:
        """The coder's ``out_size_factor`` against the grid cells per head cell the backbone and neck make."""
        strides = [total / float(upsample) for total, upsample in zip(output_strides, neck["upsample_strides"], strict=True)]
        for stride in strides:
            self.agree("bbox_coder.out_size_factor", out_size_factor, "pts_backbone.layer_strides and pts_neck.upsample_strides "
                       f"(every stage's output at stride {_stride_text(strides)})", stride, "set out_size_factor to the network's stride")

    def test_settings(self, test: Mapping[str, Any], grid: tuple[int, int, int], size: tuple[float, ...], pcr: tuple[float, ...],
                      out_size_factor: int, coder: Mapping[str, Any]) -> None:
        """test_cfg's copies of the geometry and of the coder's filters, which circle NMS leaves to the coder: each
        must say what the model does, or the config means two things."""
        fix = "make test_cfg.pts agree with the voxel layer and the bbox coder"
        for key, value, source, reference in (
            ("grid_size", lambda v: tuple(int(x) for x in v), "the voxel grid of point_cloud_range / voxel_size", grid),
            ("voxel_size", lambda v: tuple(float(x) for x in v), "the voxel layer", size),
            ("pc_range", lambda v: tuple(float(x) for x in v), "the voxel layer's point_cloud_range", pcr),
            ("out_size_factor", int, "bbox_coder.out_size_factor", out_size_factor),
            ("score_threshold", lambda v: float(v), "bbox_coder.score_threshold (circle NMS filters with the coder's)",
             float(coder["score_threshold"] or 0.0)),
            ("post_center_limit_range", lambda v: tuple(float(x) for x in v),
             "bbox_coder.post_center_range (circle NMS filters with the coder's)", tuple(float(x) for x in coder["post_center_range"])),
        ):
            if key in test:
                self.agree(f"test_cfg.pts.{key}", value(test[key]), source, reference, fix)

    def convnext_pc(self, node: Mapping[str, Any], canvas_channels: int) -> ConvNeXtPCConfig | None:
        """AWML's ConvNeXt_PC as it infers, or None for SECOND; what it cannot compute here is refused by name."""
        if type_name(node) != "ConvNeXt_PC":
            return None
        section = "pts_backbone"
        values = {**MMDET3D_DEFAULTS["convnext_pc"], **node}
        depths = [int(d) for d in self.required(section, values, "depths")]
        channels = [int(c) for c in self.required(section, values, "out_channels")]
        if len(depths) != len(channels) or not depths:
            raise self.fail(f"{section}: depths {depths} and out_channels {channels} must have one entry per stage")
        channels[0] = canvas_channels  # ConvNeXt_PC's stage 0 keeps the canvas's width, whatever out_channels[0] says
        raw = values["out_indices"]
        # a negative index counts from 4 (mmpretrain's four stages), not from the number of stages
        listed = [int(i) + MMPRETRAIN_STAGES if int(i) < 0 else int(i) for i in ([raw] if isinstance(raw, int) else raw)]
        if not listed or len(set(listed)) != len(listed) or any(not 0 <= i < len(depths) for i in listed):
            raise self.fail(f"{section}.out_indices {raw} must name distinct stages of the {len(depths)} configured")
        indices = tuple(sorted(listed))  # the outputs (and their norms) come in stage order, whatever the list's
        norm, act = values["norm_cfg"] or {}, values["act_cfg"] or {}
        refused = [f"{key}={values[key]!r} (implemented: {want!r})" for key, want in
                   (("gap_before_final_norm", False), ("first_downsample", 1), ("large_arch", None), ("linear_pw_conv", True))
                   if values[key] != want]
        if norm.get("type") != "LN2d":
            refused.append(f"norm_cfg type {norm.get('type')!r} (implemented: LN2d)")
        if act.get("type") != "GELU" or set(act) - {"type"}:
            refused.append(f"act_cfg {act} (implemented: exact GELU)")
        known = {"type", "in_channels", "out_channels", "depths", "out_indices", *MMDET3D_DEFAULTS["convnext_pc"], *_CONVNEXT_TRAINING_ONLY}
        refused += [f"{key} (ConvNeXt_PC takes no such argument)" for key in node if key not in known]
        if refused:
            raise self.unsupported(section, "; ".join(refused))
        return ConvNeXtPCConfig(channels=tuple(channels), depths=tuple(depths), out_indices=indices,
                                norm_eps=float(norm.get("eps", 1e-5)), layer_scale=float(values["layer_scale_init_value"]) > 0)


def _stride_text(strides: list[float]) -> str:
    return ", ".join(f"{s:g}" for s in strides)
