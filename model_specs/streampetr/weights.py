"""Seeded StreamPETR weights that behave like a trained network's (``model_specs.seeding``): convolutions and linear
layers at Kaiming scale, BatchNorm and LayerNorm affines near identity, the query reference points uniform in the
unit cube as AWML's ``init_weights`` draws them. MLN's scale and shift layers start at zero in AWML (an identity
modulation): here they are seeded too, so that the ego motion and the memory's age change the codes (a graph that
dropped them would pass otherwise)."""

from __future__ import annotations

import torch

from model_specs.seeding import init_like_trained, randomise_layer_norms
from model_specs.streampetr.config import StreamPETRConfig
from model_specs.streampetr.head import Petr3D

MLN_SCALE = 0.1  # MLN gamma/beta weights: a modulation of a tenth around the identity


def seeded(cfg: StreamPETRConfig, seed: int) -> Petr3D:
    model = init_like_trained(Petr3D(cfg), seed)
    randomise_layer_norms(model, seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        head = model.pts_bbox_head
        head.reference_points.weight.uniform_(0, 1, generator=generator)
        for mln in (head.spatial_alignment, head.ego_pose_pe, head.ego_pose_memory):
            for layer, centre in ((mln.gamma, 1.0), (mln.beta, 0.0)):
                layer.weight.mul_(MLN_SCALE)
                layer.bias.add_(centre)
    return model.eval()
