"""Reading an AWML/mmdet3d training config into :class:`CenterPointConfig`, without mmdet3d.

The file is read by ``model_specs.mmconfig`` (mmengine when installed, else a restricted reader with
mmengine's semantics); ``to_centerpoint`` then reads every field the model depends on. A key a config
leaves out takes the default of the mmdet3d class that would read it (not this project's), and every
component type is checked by name: a model this project does not implement is refused, never
approximated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from model_specs.centerpoint.config import POINT_FEATURES, CenterPointConfig
from model_specs.centerpoint.convnext_pc import MMPRETRAIN_STAGES, ConvNeXtPCConfig
from model_specs.mmconfig import MAX_EXPONENT, Sections, TrainingConfig, _Reader, read_config  # noqa: F401 (re-exported)

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
_HEADS = ("reg", "height", "dim", "rot", "vel")

# mmdet3d 1.4's constructor defaults, for keys a config leaves out (facts from mmdet3d's signatures).
MMDET3D_DEFAULTS = {
    "pillar_feature_net": dict(in_channels=4, feat_channels=(64,), with_distance=False, with_cluster_center=True,
                               with_voxel_center=True, mode="max", legacy=True, norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01)),
    "second": dict(out_channels=(128, 128, 256), layer_nums=(3, 5, 5), layer_strides=(2, 2, 2),
                   norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    "second_fpn": dict(out_channels=(256, 256, 256), upsample_strides=(1, 2, 4), use_conv_for_no_stride=False,
                       norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    "center_head": dict(share_conv_channel=64, num_heatmap_convs=2, norm_cfg=dict(type="BN2d"), norm_bbox=True),
    "separate_head": dict(head_conv=64, final_kernel=1, init_bias=-2.19, norm_cfg=dict(type="BN2d")),
    "bbox_coder": dict(max_num=100, score_threshold=None, post_center_range=None),
    "voxel_layer": dict(max_voxels=20000),
    # AWML's ConvNeXt_PC signature (projects/ConvNeXt_PC/backbones/convnext_pc.py at 7a6ec07)
    "convnext_pc": dict(in_channels=3, norm_cfg=dict(type="LN2d", eps=1e-6), act_cfg=dict(type="GELU"), linear_pw_conv=True,
                        layer_scale_init_value=1e-6, out_indices=-1, gap_before_final_norm=True, first_downsample=1,
                        large_arch=None),
}
# What ConvNeXt_PC's inference does not depend on: stochastic depth, freezing, activation checkpointing, the
# stem size of the parent class (its stem is replaced), and weights loading.
_CONVNEXT_TRAINING_ONLY = ("drop_path_rate", "frozen_stages", "with_cp", "stem_patch_size", "init_cfg")


def to_centerpoint(config: TrainingConfig, base: CenterPointConfig) -> CenterPointConfig:
    """The model a config describes, as a :class:`CenterPointConfig`.

    ``base`` contributes only what a training config cannot say: the TensorRT profile's min/opt
    pillars (capped at the config's max), the seeded-weight calibration and the export opset.
    """
    return _ConfigFields(config.path, config.values).centerpoint(base)


class _ConfigFields(Sections):
    """One config's sections, read with the defaults mmdet3d would apply."""

    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__("centerpoint (config)", SUPPORTED, path, values)
        model = self.model
        self.typed("model", model)
        for section in ("data_preprocessor", "pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"):
            self.typed(section, model.get(section))
        head = model["pts_bbox_head"]
        self.typed("separate_head", head.get("separate_head"))
        self.typed("bbox_coder", head.get("bbox_coder"))

    def point_features(self, in_channels: int, base: CenterPointConfig) -> tuple[tuple[str, ...], int]:
        """The meaning of the encoder's input columns and the past sweeps the test pipeline loads."""
        pipeline = self.values.get("test_pipeline")
        if not isinstance(pipeline, list):  # a model-only config: keep the spec's reading if it fits
            if in_channels != base.point_features:
                raise self.fail(f"pts_voxel_encoder.in_channels is {in_channels} and the config has no test_pipeline "
                            "to say what the point features are")
            return base.point_feature_names, base.past_sweeps
        sweeps = [t for t in pipeline if isinstance(t, dict) and t.get("type") == "LoadPointsFromMultiSweeps"]
        if in_channels == 4:
            return POINT_FEATURES[:4], 0
        if in_channels == 5 and sweeps and 4 in list(sweeps[0].get("use_dim", [0, 1, 2, 4])):
            return POINT_FEATURES, int(sweeps[0].get("sweeps_num", 10))
        raise self.unsupported("pts_voxel_encoder", f"in_channels={in_channels} without LoadPointsFromMultiSweeps writing the "
                               "time lag into column 4 (x, y, z, intensity[, time_lag] are implemented)")

    def centerpoint(self, base: CenterPointConfig) -> CenterPointConfig:
        defaults = MMDET3D_DEFAULTS
        model = self.model
        encoder = {**defaults["pillar_feature_net"], **model["pts_voxel_encoder"]}
        backbone = {**defaults["second"], **model["pts_backbone"]}
        convnext = self.convnext_pc(model["pts_backbone"], int(encoder["feat_channels"][-1]))
        if convnext is not None:  # the neck reads the output stages' widths
            backbone["out_channels"] = convnext.out_channels
        neck = {**defaults["second_fpn"], **model["pts_neck"]}
        head = {**defaults["center_head"], **model["pts_bbox_head"]}
        separate = {**defaults["separate_head"], **head["separate_head"]}
        coder = {**defaults["bbox_coder"], **head["bbox_coder"]}
        voxel_layer = {**defaults["voxel_layer"], **(model["data_preprocessor"].get("voxel_layer") or {})}
        test = (model.get("test_cfg") or {}).get("pts") or {}
        if encoder["legacy"] or encoder["with_distance"] or not encoder["with_cluster_center"] or not encoder["with_voxel_center"]:
            raise self.unsupported("pts_voxel_encoder", "decoration other than cluster-centre + voxel-centre (x, y, z) offsets "
                                   "with legacy=False")
        if encoder["mode"] != "max":
            raise self.unsupported("pts_voxel_encoder", f"mode={encoder['mode']!r}")
        if model["data_preprocessor"].get("voxel_type", "hard") != "hard":
            raise self.unsupported("data_preprocessor", f"voxel_type={model['data_preprocessor']['voxel_type']!r}")
        tasks = head.get("tasks", [])
        if len(tasks) != 1:
            raise self.unsupported("pts_bbox_head", f"{len(tasks)} tasks (this model has one CenterHead task)")
        common = head.get("common_heads", {})
        if set(common) != set(_HEADS) or len({n for _, n in common.values()} | {head["num_heatmap_convs"]}) != 1:
            raise self.unsupported("pts_bbox_head", f"common_heads {common} (implemented: {', '.join(_HEADS)} with one "
                                   "num_conv shared with num_heatmap_convs)")
        if not head["norm_bbox"]:
            raise self.unsupported("pts_bbox_head", "norm_bbox=False")
        if test.get("nms_type", "circle") != "circle":
            raise self.unsupported("test_cfg.pts", f"nms_type={test.get('nms_type')!r}")
        pcr = tuple(float(v) for v in voxel_layer.get("point_cloud_range", encoder.get("point_cloud_range", base.point_cloud_range)))
        size = tuple(float(v) for v in voxel_layer.get("voxel_size", encoder.get("voxel_size", base.voxel_size)))
        for section, node in (("pts_voxel_encoder", encoder), ("bbox_coder", coder)):
            for key, value, n in (("point_cloud_range", pcr, 6), ("voxel_size", size, 3)):
                other = node.get("pc_range" if section == "bbox_coder" and key == "point_cloud_range" else key)
                if other is not None and tuple(float(v) for v in other)[:n] != value[: len(other)]:
                    raise self.fail(f"{section}.{key} {list(other)} differs from the voxelizer's {list(value)}",
                                "make the voxel layer, the encoder and the bbox coder agree")
        max_voxels = voxel_layer["max_voxels"]
        max_voxels = int(max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels)  # [1]: mmcv's test-time value
        names, past_sweeps = self.point_features(int(encoder["in_channels"]), base)
        return dataclasses.replace(
            base,
            point_cloud_range=pcr,
            voxel_size=size,
            max_points_per_voxel=int(voxel_layer.get("max_num_points", base.max_points_per_voxel)),
            max_voxels=max_voxels,
            min_voxels=min(base.min_voxels, max_voxels),
            opt_voxels=min(base.opt_voxels, max_voxels),
            point_feature_names=names,
            past_sweeps=past_sweeps,
            pfn_channels=tuple(int(c) for c in encoder["feat_channels"]),
            pfn_norm=self.norm("pts_voxel_encoder", encoder["norm_cfg"]),
            voxel_center_z=model["pts_voxel_encoder"]["type"].split(".")[-1] != "BackwardPillarFeatureNet",
            convnext=convnext,
            backbone_channels=tuple(int(c) for c in backbone["out_channels"]),
            backbone_layers=tuple(int(n) for n in backbone["layer_nums"]),
            backbone_strides=tuple(int(s) for s in backbone["layer_strides"]),
            backbone_norm=self.norm("pts_backbone", backbone["norm_cfg"]),
            neck_channels=tuple(int(c) for c in neck["out_channels"]),
            neck_upsample_strides=tuple(float(s) for s in neck["upsample_strides"]),
            neck_norm=self.norm("pts_neck", neck["norm_cfg"]),
            use_conv_for_no_stride=bool(neck["use_conv_for_no_stride"]),
            head_shared_channels=int(head["share_conv_channel"]),
            head_conv_channels=int(separate["head_conv"]),
            head_num_conv=int(head["num_heatmap_convs"]),
            head_final_kernel=int(separate["final_kernel"]),
            head_norm=self.norm("pts_bbox_head", head["norm_cfg"]),
            class_names=tuple(tasks[0]["class_names"]),
            heatmap_init_bias=float(separate["init_bias"]),
            out_size_factor=int(coder.get("out_size_factor", base.out_size_factor)),
            score_threshold=float(coder["score_threshold"]) if coder["score_threshold"] is not None else 0.0,
            max_detections_pre_nms=int(coder["max_num"]),
            post_center_range=tuple(float(v) for v in (coder["post_center_range"] or base.post_center_range)),
            nms_min_radius=float((test.get("min_radius") or [base.nms_min_radius])[0]),
            post_max_size=int(test.get("post_max_size", base.post_max_size)),
        )

    def convnext_pc(self, node: Mapping[str, Any], canvas_channels: int) -> ConvNeXtPCConfig | None:
        """AWML's ConvNeXt_PC as it infers, or None for SECOND; what it cannot compute here is refused by name."""
        if node["type"].split(".")[-1] != "ConvNeXt_PC":
            return None
        section = "pts_backbone"
        values = {**MMDET3D_DEFAULTS["convnext_pc"], **node}
        depths = [int(d) for d in self.required(section, values, "depths")]
        channels = [int(c) for c in self.required(section, values, "out_channels")]
        if len(depths) != len(channels) or not depths:
            raise self.fail(f"{section}: depths {depths} and out_channels {channels} must have one entry per stage")
        if int(values["in_channels"]) != canvas_channels:
            raise self.fail(f"{section}.in_channels is {values['in_channels']}, the pillar encoder gives {canvas_channels} channels",
                            "set pts_backbone.in_channels to pts_voxel_encoder.feat_channels[-1]")
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
