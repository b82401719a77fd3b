"""Reading AWML's StreamPETR training configs into :class:`StreamPETRConfig`, without mmdet3d.

``model_specs.mmconfig`` reads the file and its ``_base_`` chain; ``to_streampetr`` reads the model (``Petr3D``: mmdet's
ResNet, CPFPN, FocalHead, StreamPETRHead with PETRTemporalTransformer) and what the deploy script reads beside it
(``ida_aug_conf_test.final_dim``, the camera count, ``img_norm_cfg``). What this spec does not compute (another
backbone, a deep stem, a neck with norms or extra levels, the decoder in another order, a head width other than the
256 that AWML's MLN fixes) is refused by name, as is any key outside :data:`FIELDS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_specs.mmconfig import Sections, TrainingConfig
from model_specs.streampetr.config import StreamPETRConfig
from model_specs.streampetr.model import ARCH, EMBED

SPEC = "streampetr (config)"
SUPPORTED = {"model": ("Petr3D",), "img_backbone": ("ResNet",), "img_neck": ("CPFPN",), "img_roi_head": ("FocalHead",),
             "pts_bbox_head": ("StreamPETRHead",),
             "bbox_coder": ("NMSFreeCoder",), "transformer": ("PETRTemporalTransformer",), "decoder": ("PETRTransformerDecoder",),
             "transformerlayers": ("PETRTemporalDecoderLayer",), "attention": ("MultiheadAttention", "PETRMultiheadAttention",
                                                                              "PETRMultiheadFlashAttention")}
_TRAINING = "training only (losses, assignment, denoising queries, sampling)"
_TRAIN = dict.fromkeys(("loss_cls", "loss_bbox", "loss_iou", "assigner", "train_cfg", "scalar", "noise_scale", "noise_trans", "dn_weight",
                        "split", "with_dn", "match_with_velo", "match_costs", "loss_cls2d", "loss_centerness", "loss_bbox2d", "loss_iou2d",
                        "loss_centers2d", "bbox_coder", "sync_cls_avg_factor"), _TRAINING)
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "Petr3D": (("stride", "img_backbone", "img_neck", "img_roi_head", "pts_bbox_head"),
               {"num_frame_head_grads": _TRAINING, "num_frame_backbone_grads": _TRAINING, "num_frame_losses": _TRAINING,
                "use_grid_mask": "GridMask is a training augmentation (off at inference)"}),
    "ResNet": (("depth", "num_stages", "out_indices", "norm_cfg", "style"),
               {"norm_eval": "BatchNorm is in eval mode at inference anyway", "with_cp": "activation checkpointing (training)"}),
    "CPFPN": (("in_channels", "out_channels", "num_outs"), {}),
    "FocalHead": (("num_classes", "in_channels"), {**_TRAIN, "embed_dims": "the 2D head's width: its layers are unused at inference"}),
    "StreamPETRHead": (("num_classes", "in_channels", "num_query", "memory_len", "topk_proposals", "num_propagated", "with_ego_pos",
                        "LID", "position_range", "code_weights", "transformer", "embed_dims", "depth_num", "depth_start", "code_size",
                        "num_reg_fcs", "normedlinear", "score_thres", "use_bottom_center", "bbox_coder"),
                       {**{k: v for k, v in _TRAIN.items() if k != "bbox_coder"},
                        "stride": "the head's own copy (Petr3D.stride places the tokens)",
                        "with_position": "not a StreamPETRHead argument: its **kwargs swallow it"}),
    "NMSFreeCoder": (("pc_range", "post_center_range", "max_num", "score_threshold", "num_classes"),
                     {"voxel_size": "kept by the coder, never read by its decode"}),
    "PETRTemporalTransformer": (("decoder",), {}),
    "PETRTransformerDecoder": (("post_norm_cfg", "return_intermediate", "num_layers", "transformerlayers"), {}),
    "PETRTemporalDecoderLayer": (("attn_cfgs", "feedforward_channels", "operation_order"),
                                 {"ffn_dropout": "dropout (off at inference)", "with_cp": "activation checkpointing (training)"}),
    "attention": (("embed_dims", "num_heads"), {"dropout": "dropout (off at inference)"}),
}
ORDER = ("self_attn", "norm", "cross_attn", "norm", "ffn", "norm")


def to_streampetr(config: TrainingConfig, base: StreamPETRConfig) -> StreamPETRConfig:
    """The model a config describes; ``base`` contributes what a training config cannot say (the opset)."""
    return _Sections(config.path, config.values).streampetr(base)


class _Sections(Sections):
    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        super().__init__(SPEC, SUPPORTED, path, values, FIELDS)
        self.typed("model", self.model)
        for section in ("img_backbone", "img_neck", "img_roi_head", "pts_bbox_head"):
            self.typed(section, self.model.get(section))

    def streampetr(self, base: StreamPETRConfig) -> StreamPETRConfig:
        model = self.model
        self.known("model", model)
        backbone, neck, roi, head = (model[k] for k in ("img_backbone", "img_neck", "img_roi_head", "pts_bbox_head"))
        for section, node in (("img_backbone", backbone), ("img_neck", neck), ("img_roi_head", roi), ("pts_bbox_head", head)):
            self.known(section, node)
        depth = int(self.required("img_backbone", backbone, "depth"))
        if depth not in ARCH or int(backbone.get("num_stages", 4)) != 4 or backbone.get("style", "pytorch") != "pytorch":
            raise self.unsupported("img_backbone", f"ResNet depth {depth}, {backbone.get('num_stages')} stages, style {backbone.get('style')}")
        self.norm("img_backbone", backbone.get("norm_cfg", {"type": "BN"}))
        if int(neck["num_outs"]) != len(neck["in_channels"]):
            raise self.unsupported("img_neck", "extra levels (num_outs above the inputs)")
        transformer = self.typed("transformer", head["transformer"])
        self.known("transformer", transformer)
        decoder = self.typed("decoder", transformer["decoder"])
        self.known("decoder", decoder)
        layer = self.typed("transformerlayers", decoder["transformerlayers"])
        self.known("transformerlayers", layer)
        attentions = layer["attn_cfgs"]
        for attention in attentions:
            self.typed("attention", attention)
            self.fields("attention", attention, FIELDS["attention"][0], FIELDS["attention"][1])
        if tuple(layer["operation_order"]) != ORDER or len(attentions) != 2 or not decoder.get("return_intermediate", False):
            raise self.unsupported("transformerlayers", f"operation_order {layer['operation_order']} (implemented: {', '.join(ORDER)}, "
                                   "two attentions, every layer's output returned)")
        heads = {int(a["num_heads"]) for a in attentions}
        widths = {int(a["embed_dims"]) for a in attentions} | {int(head.get("embed_dims", EMBED))}
        if widths != {EMBED} or len(heads) != 1:
            raise self.unsupported("pts_bbox_head", f"embed_dims {sorted(widths)}, heads {sorted(heads)} (AWML's MLN is {EMBED} wide)")
        if not head.get("with_ego_pos", True) or head.get("normedlinear", False):
            raise self.unsupported("pts_bbox_head", "with_ego_pos off or a normed classifier")
        classes = tuple(self.values.get("class_names") or base.classes)
        self.agree("pts_bbox_head.num_classes", int(head["num_classes"]), "len(class_names)", len(classes), "match them")
        self.agree("img_neck.out_channels", int(neck["out_channels"]), "pts_bbox_head.in_channels", int(head.get("in_channels", 256)), "match them")
        self.agree("img_neck.in_channels", tuple(int(c) for c in neck["in_channels"]), f"ResNet-{depth}'s out_indices",
                   tuple((64 if ARCH[depth][0].expansion == 1 else 256) * 2**i for i in backbone["out_indices"]), "match them")
        self.agree("stride", int(model.get("stride", base.stride)), f"the neck's first level (out_indices {backbone['out_indices']})",
                   2 ** (int(backbone["out_indices"][0]) + 2), "match them")
        final = self.values.get("ida_aug_conf_test") or self.values.get("ida_aug_conf") or {}
        norm = self.values.get("img_norm_cfg") or {}
        cameras = self.values.get("camera_order")
        coder = self.coder(head, base, len(classes), int(head.get("num_query", 100)) + int(head.get("num_propagated", 256)))
        return dataclasses.replace(
            base, classes=classes, num_cameras=len(cameras) if cameras else int(self.values.get("num_cameras", base.num_cameras)),
            camera_order=tuple(str(c) for c in cameras) if cameras else base.camera_order,
            final_dim=_pair(final.get("final_dim", base.final_dim)), stride=int(model.get("stride", base.stride)),
            img_mean=self.three("img_norm_cfg.mean", norm.get("mean", base.img_mean)),
            img_std=self.three("img_norm_cfg.std", norm.get("std", base.img_std)),
            to_rgb=bool(norm.get("to_rgb", True)), depth=depth, out_indices=tuple(int(i) for i in backbone["out_indices"]),
            neck_in=tuple(int(c) for c in neck["in_channels"]), neck_out=int(neck["out_channels"]), in_channels=int(head.get("in_channels", 256)),
            num_query=int(head.get("num_query", 100)), memory_len=int(head.get("memory_len", 1024)),
            topk_proposals=int(head.get("topk_proposals", 256)), num_propagated=int(head.get("num_propagated", 256)),
            lid=bool(head.get("LID", False)), depth_num=int(head.get("depth_num", 64)), depth_start=float(head.get("depth_start", 1)),
            position_range=self.six("pts_bbox_head.position_range", head.get("position_range", (-65, -65, -8.0, 65, 65, 8.0))),
            pc_range=self.six("pts_bbox_head.bbox_coder.pc_range", coder.get("pc_range", self.values.get("point_cloud_range", base.pc_range))),
            max_num=int(coder.get("max_num", 100)), score_threshold=_optional(coder.get("score_threshold")),
            post_center_range=self.six("pts_bbox_head.bbox_coder.post_center_range", coder["post_center_range"]),
            score_thres=float(head.get("score_thres", 0.3)),
            use_bottom_center=bool(head.get("use_bottom_center", False)),
            code_weights=tuple(float(v) for v in head.get("code_weights", (1.0,) * 8 + (0.2, 0.2))), code_size=int(head.get("code_size", 10)),
            num_reg_fcs=int(head.get("num_reg_fcs", 2)), num_layers=int(decoder["num_layers"]), num_heads=heads.pop(),
            feedforward_channels=int(layer["feedforward_channels"]))

    def coder(self, head: Mapping[str, Any], base: StreamPETRConfig, classes: int, queries: int) -> Mapping[str, Any]:
        """The head's NMSFreeCoder, checked for what its decode would do otherwise than this spec's (a config without one
        decodes with ``base``'s settings)."""
        node = head.get("bbox_coder")
        if node is None:
            return {"pc_range": self.values.get("point_cloud_range", base.pc_range), "max_num": base.max_num,
                    "score_threshold": base.score_threshold, "post_center_range": base.post_center_range, "num_classes": classes}
        self.typed("bbox_coder", node)
        self.known("pts_bbox_head.bbox_coder", node)
        self.agree("pts_bbox_head.bbox_coder.num_classes", int(node.get("num_classes", 10)), "len(class_names)", classes, "match them")
        if node.get("post_center_range") is None:
            raise self.unsupported("pts_bbox_head.bbox_coder", "post_center_range None (AWML's NMSFreeCoder raises NotImplementedError "
                                   "without it): set it")
        if int(node.get("max_num", 100)) > classes * queries:
            raise self.fail(f"pts_bbox_head.bbox_coder.max_num {node.get('max_num', 100)} exceeds the last decoder layer's {queries} "
                            f"queries x {classes} classes: AWML's top-k fails", f"set max_num <= {classes * queries}")
        return node


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _pair(values: Any) -> tuple[int, int]:
    height, width = (int(v) for v in values)
    return height, width
