"""AWML's ``--nms`` YOLOX export: boxes decoded in the graph, then TensorRT's EfficientNMS_TRT plugin.

AWML's ``deploy_yolox_s_opt.py --nms`` exports tier4/YOLOX with ``--decode_in_inference`` (centre
``(dx + grid) * stride``, size ``exp(log w) * stride``, sigmoid objectness and classes) and
``tools/detection2d/deploy_yolox.py:add_efficientnms_trt`` appends, with onnx-graphsurgeon, boxes = the
first four terms (cx, cy, w, h), scores = objectness x class scores and an EfficientNMS_TRT node with
``background_class=-1, box_coding=1, iou_threshold=0.65, max_output_boxes=100, score_activation=0,
score_threshold=0.3`` (the script's defaults) and four outputs. Here the node comes from a symbolic on
an autograd function, so the exporter stays generic; its forward is the plugin's algorithm in torch (the
PyTorch reference), read from TensorRT's ``plugin/efficientNMSPlugin``: scores >= threshold, sorted
descending, the top 4096 candidates, greedy class-aware NMS where IoU >= threshold suppresses, at most
``max_output_boxes`` kept, corners x1, y1, x2, y2 out, zero padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from exporters.plugins import PLUGIN_DOMAIN
from model_specs.yolox.config import YoloxConfig
from model_specs.yolox.postprocess import greedy_nms, grid

PLUGIN = "EfficientNMS_TRT"
OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")


@dataclass(frozen=True)
class EfficientNmsConfig:
    """The plugin's attributes as AWML's deploy script writes them (its argparse defaults)."""

    score_threshold: float = 0.3  # --score-threshold
    iou_threshold: float = 0.65  # --iou_threshold
    max_output_boxes: int = 100  # --max_output_boxes
    background_class: int = -1  # YOLOX has no background class
    box_coding: int = 1  # BoxCenterSize: the decoded head gives cx, cy, w, h
    score_activation: int = 0  # the scores are sigmoid products already
    plugin_version: str = "1"
    # not attributes AWML sets: the plugin's own defaults, which its forward here follows
    class_agnostic: int = 0
    selected_boxes: int = 4096  # EfficientNMSParameters.numSelectedBoxes: candidates NMS sees after the sort

    def attributes(self) -> dict[str, object]:
        """The node's attributes, as AWML's graph carries them."""
        return {"background_class": self.background_class, "box_coding": self.box_coding, "iou_threshold": self.iou_threshold,
                "max_output_boxes": self.max_output_boxes, "plugin_namespace": "", "plugin_version": self.plugin_version,
                "score_activation": self.score_activation, "score_threshold": self.score_threshold}


def efficient_nms(boxes: torch.Tensor, scores: torch.Tensor, cfg: EfficientNmsConfig) -> tuple[torch.Tensor, ...]:
    """EfficientNMS_TRT's outputs for ``boxes`` [B, A, 4] (cx, cy, w, h) and ``scores`` [B, A, C]."""
    batch, limit, device = boxes.shape[0], cfg.max_output_boxes, boxes.device
    count = torch.zeros(batch, 1, dtype=torch.int32, device=device)
    kept_boxes = torch.zeros(batch, limit, 4, dtype=boxes.dtype, device=device)
    kept_scores = torch.zeros(batch, limit, dtype=scores.dtype, device=device)
    kept_classes = torch.zeros(batch, limit, dtype=torch.int32, device=device)
    corners = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)
    for b in range(batch):
        passing = scores[b] >= cfg.score_threshold
        if cfg.background_class >= 0:
            passing[:, cfg.background_class] = False
        anchor, label = torch.nonzero(passing, as_tuple=True)
        score = scores[b][anchor, label]
        order = torch.argsort(score, descending=True, stable=True)[:cfg.selected_boxes]
        # class-aware: a box suppresses only its class's, on the raw coordinates as the plugin's kernel compares them
        # (shifting classes apart, mmcv's trick, would round their IoU differently)
        same_class = None if cfg.class_agnostic else label[order]
        order = order[greedy_nms(corners[b][anchor[order]], cfg.iou_threshold, inclusive=True, labels=same_class)][:limit] if len(order) else order
        n = len(order)
        count[b, 0] = n
        kept_boxes[b, :n], kept_scores[b, :n], kept_classes[b, :n] = corners[b][anchor[order]], score[order], label[order].int()
    return count, kept_boxes, kept_scores, kept_classes


class _EfficientNms(torch.autograd.Function):
    """Computes the plugin in torch; exports as one EfficientNMS_TRT node (TorchScript exporter's symbolic)."""

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, cfg: EfficientNmsConfig):
        return efficient_nms(boxes, scores, cfg)

    @staticmethod
    def symbolic(g, boxes, scores, cfg: EfficientNmsConfig):
        attrs = {}
        for key, value in cfg.attributes().items():  # ONNX attribute kinds by suffix: _i int, _f float, _s string
            suffix = "s" if isinstance(value, str) else "f" if isinstance(value, float) else "i"
            attrs[f"{key}_{suffix}"] = value
        outputs = g.op(f"{PLUGIN_DOMAIN}::{PLUGIN}", boxes, scores, outputs=len(OUTPUTS), **attrs)
        # the exporter cannot infer a custom op's outputs: state them (batch from the boxes, K from the config)
        batch, k = boxes.type().sizes()[0], cfg.max_output_boxes
        for value, dtype, sizes in zip(outputs, (torch.int32, boxes.type().dtype(), scores.type().dtype(), torch.int32),
                                       ([batch, 1], [batch, k, 4], [batch, k], [batch, k]), strict=True):
            value.setType(boxes.type().with_dtype(dtype).with_sizes(sizes))
        return outputs


class DecodedYolox(nn.Module):
    """images → (boxes [B, A, 4] cx, cy, w, h in network pixels, scores [B, A, C] = obj x cls): the graph
    up to the plugin, as tier4/YOLOX's ``decode_in_inference`` and AWML's Slice/Mul surgery make it."""

    def __init__(self, model: nn.Module, cfg: YoloxConfig) -> None:
        super().__init__()
        self.model = model
        points, strides = grid(cfg, cfg.input_size)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        centre = (out[..., :2] + self.points) * self.strides
        size = out[..., 2:4].exp() * self.strides
        return torch.cat([centre, size], -1), out[..., 4:5] * out[..., 5:]


class DecodedLayout(nn.Module):
    """images → [B, A, 4 + 1 + C] decoded as tier4/YOLOX's ``--decode_in_inference`` export lays it out: the
    single-output graph AWML's ``add_efficientnms_trt`` slices (``tools/record_awml_nms.py`` feeds it there)."""

    def __init__(self, model: nn.Module, cfg: YoloxConfig) -> None:
        super().__init__()
        self.decoded = DecodedYolox(model, cfg)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.decoded.model(images)
        boxes, _ = self.decoded(images)
        return torch.cat([boxes, out[..., 4:]], -1)


class YoloxWithEfficientNms(nn.Module):
    """images → num_detections [B, 1], detection_boxes [B, K, 4], detection_scores [B, K], detection_classes [B, K]."""

    def __init__(self, model: nn.Module, cfg: YoloxConfig, nms: EfficientNmsConfig) -> None:
        super().__init__()
        self.decoded, self.nms = DecodedYolox(model, cfg), nms

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        boxes, scores = self.decoded(images)
        return _EfficientNms.apply(boxes, scores, self.nms)
