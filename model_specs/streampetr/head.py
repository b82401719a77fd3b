"""StreamPETR's head and detector (AWML's ``StreamPETRHead``, ``Petr3D``) and the three sections AWML's
``deploy/containers.py`` exports (``extract_img_feat``, ``position_embedding``, ``pts_head_memory``).

The memory queue is the ``pts_head_memory`` section's inputs (``pre_memory_*``) and outputs (``post_memory_*``): the
section aligns the memory to the current ego pose (``data_ego_pose_inv``), runs the decoder over the queries, the
propagated memory entries and the image tokens, then puts the ``topk_proposals`` most confident queries in front of
the memory and moves it all into the global frame (``data_ego_pose``). What the graph leaves to the host between
frames (the queue cut back to ``memory_len`` rows, the entries' age in seconds) is the spec's ``between``.
"""

from __future__ import annotations

import torch
from torch import nn

from model_specs.streampetr.config import StreamPETRConfig
from model_specs.streampetr.model import (
    CPFPN,
    EMBED,
    MLN,
    NUM_PRED,
    FocalHead,
    PETRTemporalTransformer,
    ResNet,
    SELayer_Linear,
    inverse_sigmoid,
    nerf_positional_encoding,
    pos2posemb1d,
    pos2posemb3d,
    topk_gather,
    transform_reference_points,
)

EGO_MOTION_CODE = 180  # nerf_positional_encoding of 15 numbers (velocity 2, age 1, 3x4 pose 12) x 6 bands x sin, cos
CONE = 8  # intrinsic focal lengths 2, the last and the 30th-from-last depth bins' points 3 + 3


def _frozen(values) -> nn.Parameter:
    return nn.Parameter(torch.as_tensor(values, dtype=torch.float32), requires_grad=False)


def pseudo_reference_points(count: int) -> torch.Tensor:
    """AWML's grid of first-frame reference points: cell centres of a cube cut ``round(count ** (1/3) + 1)`` ways."""
    divisions = round(count ** (1 / 3) + 1)
    edges = torch.linspace(0, 1, steps=divisions + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), dim=-1).reshape(-1, 3)[:count]


class StreamPETRHead(nn.Module):
    def __init__(self, cfg: StreamPETRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        classes = len(cfg.classes)
        cls_branch: list[nn.Module] = []
        reg_branch: list[nn.Module] = []
        for _ in range(cfg.num_reg_fcs):
            cls_branch += [nn.Linear(EMBED, EMBED), nn.LayerNorm(EMBED), nn.ReLU(inplace=True)]
            reg_branch += [nn.Linear(EMBED, EMBED), nn.ReLU()]
        fc_cls = nn.Sequential(*cls_branch, nn.Linear(EMBED, classes))
        fc_reg = nn.Sequential(*reg_branch, nn.Linear(EMBED, cfg.code_size))
        self.cls_branches = nn.ModuleList([fc_cls for _ in range(NUM_PRED)])  # one module, six names: AWML's
        self.reg_branches = nn.ModuleList([fc_reg for _ in range(NUM_PRED)])
        self.position_encoder = nn.Sequential(nn.Linear(cfg.depth_num * 3, EMBED * 4), nn.ReLU(), nn.Linear(EMBED * 4, EMBED))
        self.memory_embed = nn.Sequential(nn.Linear(cfg.in_channels, EMBED), nn.ReLU(), nn.Linear(EMBED, EMBED))
        self.featurized_pe = SELayer_Linear(EMBED)
        self.reference_points = nn.Embedding(cfg.num_query, 3)
        self.pseudo_reference_points = nn.Parameter(pseudo_reference_points(cfg.num_propagated), requires_grad=False)
        self.query_embedding = nn.Sequential(nn.Linear(EMBED * 3 // 2, EMBED), nn.ReLU(), nn.Linear(EMBED, EMBED))
        self.spatial_alignment = MLN(CONE)
        self.time_embedding = nn.Sequential(nn.Linear(EMBED, EMBED), nn.LayerNorm(EMBED))
        self.ego_pose_pe = MLN(EGO_MOTION_CODE)
        self.ego_pose_memory = MLN(EGO_MOTION_CODE)
        self.transformer = PETRTemporalTransformer(cfg)
        self.code_weights = _frozen(cfg.code_weights[: cfg.code_size])
        self.match_costs = _frozen(cfg.code_weights[: cfg.code_size])
        self.pc_range = _frozen(cfg.pc_range)
        self.position_range = _frozen(cfg.position_range)
        index = torch.arange(cfg.depth_num, dtype=torch.float32)
        if cfg.lid:  # linear-increasing depth bins
            bin_size = (cfg.position_range[3] - cfg.depth_start) / (cfg.depth_num * (1 + cfg.depth_num))
            coords_d = cfg.depth_start + bin_size * index * (index + 1)
        else:
            coords_d = cfg.depth_start + (cfg.position_range[3] - cfg.depth_start) / cfg.depth_num * index
        self.coords_d = nn.Parameter(coords_d, requires_grad=False)

    def position_embeding(self, intrinsics, img2lidar, centres, pad_shape):
        """AWML's ``position_embeding`` with no top-k sampling: each token's rays through the depth bins, in the
        position range's unit cube, encoded; and the cone (focal lengths, two points of the ray)."""
        bn, h, w, _ = centres.shape
        b = intrinsics.size(0)
        focal = torch.stack([intrinsics[..., 0, 0], intrinsics[..., 1, 1]], dim=-1).abs() / 1e3
        focal = focal.repeat(1, h * w, 1).view(b, -1, 2)  # AWML's order: the cameras tiled h * w times
        tokens = focal.size(1)
        pad_h, pad_w = pad_shape[0], pad_shape[1]
        centres = torch.stack([centres[..., 0] * pad_w, centres[..., 1] * pad_h], dim=-1)
        depths = self.coords_d.shape[0]
        centres = centres.view(b, tokens, 1, 2).repeat(1, 1, depths, 1)
        coords = torch.cat([centres, self.coords_d.view(1, 1, depths, 1).repeat(b, tokens, 1, 1)], dim=-1)
        coords = torch.cat((coords, torch.ones_like(coords[..., :1])), -1)
        coords = torch.cat([coords[..., :2] * torch.clamp(coords[..., 2:3], min=1e-5), coords[..., 2:]], dim=-1).unsqueeze(-1)
        img2lidars = img2lidar.view(bn, 1, 1, 4, 4).repeat(1, h * w, depths, 1, 1).view(b, tokens, depths, 4, 4)
        coords3d = torch.matmul(img2lidars, coords).squeeze(-1)[..., :3]
        coords3d = (coords3d - self.position_range[0:3]) / (self.position_range[3:6] - self.position_range[0:3])
        coords3d = coords3d.reshape(b, -1, depths * 3)
        cone = torch.cat([focal, coords3d[..., -3:], coords3d[..., -90:-87]], dim=-1)
        return self.position_encoder(inverse_sigmoid(coords3d)), cone

    def temporal_alignment(self, query_pos, tgt, reference_points, memory):
        """The memory's entries as keys and propagated queries, each code modulated by its ego motion and age."""
        embedding, reference, timestamp, egopose, velo = memory
        b, queries = query_pos.shape[:2]
        temp_reference = (reference - self.pc_range[:3]) / (self.pc_range[3:6] - self.pc_range[0:3])
        temp_pos = self.query_embedding(pos2posemb3d(temp_reference))
        identity = torch.eye(4, device=query_pos.device).view(1, 1, 4, 4).repeat(b, queries, 1, 1)
        rec_motion = nerf_positional_encoding(torch.cat([torch.zeros_like(reference_points[..., :3]), identity[..., :3, :].flatten(-2)], dim=-1))
        tgt = self.ego_pose_memory(tgt, rec_motion)
        query_pos = self.ego_pose_pe(query_pos, rec_motion)
        memory_motion = nerf_positional_encoding(torch.cat([velo, timestamp, egopose[..., :3, :].flatten(-2)], dim=-1).float())
        temp_pos = self.ego_pose_pe(temp_pos, memory_motion)
        temp_memory = self.ego_pose_memory(embedding, memory_motion)
        query_pos = query_pos + self.time_embedding(pos2posemb1d(torch.zeros_like(reference_points[..., :1])))
        temp_pos = temp_pos + self.time_embedding(pos2posemb1d(timestamp).float())
        n = self.cfg.num_propagated
        tgt = torch.cat([tgt, temp_memory[:, :n]], dim=1)
        query_pos = torch.cat([query_pos, temp_pos[:, :n]], dim=1)
        reference_points = torch.cat([reference_points, temp_reference[:, :n]], dim=1)
        rec_ego_pose = torch.eye(4, device=query_pos.device).view(1, 1, 4, 4).repeat(b, query_pos.shape[1] + n, 1, 1)
        return tgt, query_pos, reference_points, temp_memory[:, n:], temp_pos[:, n:], rec_ego_pose


class Petr3D(nn.Module):
    def __init__(self, cfg: StreamPETRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pts_bbox_head = StreamPETRHead(cfg)  # first, as MVXTwoStageDetector builds it: the state_dict's order is AWML's
        self.img_backbone = ResNet(cfg.depth, cfg.out_indices)
        self.img_neck = CPFPN(cfg.neck_in, cfg.neck_out)
        self.img_roi_head = FocalHead(len(cfg.classes), cfg.in_channels, EMBED)

    def extract_img_feat(self, img: torch.Tensor) -> torch.Tensor:
        """[1, cameras, 3, H, W] → the neck's first level [1, cameras, C, H/stride, W/stride]."""
        b, n = img.shape[:2]
        feats = self.img_neck(self.img_backbone(img.flatten(0, 1)))[0]
        return feats.view(b, n, *feats.shape[1:])

    def prepare_location(self, pad_shape: torch.Tensor, img_feats: torch.Tensor) -> torch.Tensor:
        """AWML's ``locations``: each feature cell's centre in the padded image, as a share of its size."""
        b, n, _, h, w = img_feats.shape
        stride = self.cfg.stride
        xs = (torch.arange(0, stride * w, step=stride, dtype=torch.float32, device=img_feats.device) + stride // 2) / pad_shape[1]
        ys = (torch.arange(0, stride * h, step=stride, dtype=torch.float32, device=img_feats.device) + stride // 2) / pad_shape[0]
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack((grid_x, grid_y), dim=-1)[None].repeat(b * n, 1, 1, 1)


class ExtractImgFeat(nn.Module):
    """AWML's TrtEncoderContainer: ``img`` → ``img_feats``."""

    def __init__(self, mod: Petr3D) -> None:
        super().__init__()
        self.mod = mod

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.mod.extract_img_feat(img)


class PositionEmbedding(nn.Module):
    """AWML's TrtPositionEmbeddingContainer: (``img_metas_pad``, ``intrinsics``, ``img2lidar``) → (``pos_embed``, ``cone``).
    AWML's container also takes ``img_feats``, whose shape alone it reads: the exporter drops it from the graph (an
    input no node uses), so the graph's inputs, and this module's, are the three; the shape is the config's."""

    def __init__(self, mod: Petr3D) -> None:
        super().__init__()
        self.mod = mod

    def forward(self, img_metas_pad, intrinsics, img2lidar):
        cfg = self.mod.cfg
        img_feats = torch.zeros(1, cfg.num_cameras, cfg.in_channels, *cfg.feature_size, device=img_metas_pad.device)
        location = self.mod.prepare_location(img_metas_pad, img_feats)
        return self.mod.pts_bbox_head.position_embeding(intrinsics, img2lidar, location, img_metas_pad)


class PtsHeadMemory(nn.Module):
    """AWML's TrtPtsHeadContainer (``with_dn`` off): the head with the memory queue in and out. AWML's container also
    takes ``data_timestamp``, which only its commented-out lines read: the exporter drops it from the graph."""

    def __init__(self, mod: Petr3D) -> None:
        super().__init__()
        self.mod = mod

    def forward(self, x, pos_embed, cone, data_ego_pose, data_ego_pose_inv, memory_embedding, memory_reference_point,
                memory_timestamp, memory_egopose, memory_velo):
        head, length = self.mod.pts_bbox_head, self.mod.cfg.memory_len
        memory_egopose = data_ego_pose_inv.unsqueeze(1) @ memory_egopose
        memory_reference_point = transform_reference_points(memory_reference_point, data_ego_pose_inv)
        memory = (memory_embedding[:, :length], memory_reference_point[:, :length], memory_timestamp[:, :length],
                  memory_egopose[:, :length], memory_velo[:, :length])
        b, n, c, h, w = x.shape
        tokens = x.permute(0, 1, 3, 4, 2).reshape(b, n * h * w, c)
        tokens = head.spatial_alignment(head.memory_embed(tokens), cone)
        pos_embed = head.featurized_pe(pos_embed, tokens)
        reference_points = head.reference_points.weight.unsqueeze(0).repeat(b, 1, 1)
        query_pos = head.query_embedding(pos2posemb3d(reference_points))
        query_pos_in = query_pos
        tgt = torch.zeros_like(query_pos)
        tgt, query_pos, reference_points, temp_memory, temp_pos, rec_ego_pose = head.temporal_alignment(query_pos, tgt, reference_points, memory)
        outs_dec = head.transformer(tokens, tgt, query_pos, pos_embed, temp_memory, temp_pos)
        reference = inverse_sigmoid(reference_points)
        classes, coords = [], []
        for level in range(outs_dec.shape[0]):
            classes.append(head.cls_branches[level](outs_dec[level]))
            box = head.reg_branches[level](outs_dec[level])
            coords.append(torch.cat([(box[..., 0:3] + reference[..., 0:3]).sigmoid(), box[..., 3:]], dim=-1))
        all_cls_scores = torch.stack(classes)
        all_bbox_preds = torch.stack(coords)
        centres = all_bbox_preds[..., 0:3] * (head.pc_range[3:6] - head.pc_range[0:3]) + head.pc_range[0:3]
        all_bbox_preds = torch.cat([centres, all_bbox_preds[..., 3:]], dim=-1)
        post = self._post_update(head, memory, data_ego_pose, rec_ego_pose, all_cls_scores, all_bbox_preds, outs_dec)
        return (all_cls_scores.flatten(0, 2).unsqueeze(0).transpose(2, 1), all_bbox_preds.flatten(0, 2).unsqueeze(0).transpose(2, 1),
                *post, reference_points, tgt, temp_memory, temp_pos, query_pos, query_pos_in, outs_dec)

    @staticmethod
    def _post_update(head, memory, data_ego_pose, rec_ego_pose, all_cls_scores, all_bbox_preds, outs_dec):
        """The ``topk_proposals`` most confident queries of the last layer in front of the memory, all in the global frame."""
        embedding, reference, timestamp, egopose, velo = memory
        score = all_cls_scores[-1].sigmoid().topk(1, dim=-1).values[..., 0:1]
        _, index = torch.topk(score, head.cfg.topk_proposals, dim=1)
        rec_timestamp = topk_gather(torch.zeros_like(score, dtype=torch.float64), index)
        embedding = torch.cat([topk_gather(outs_dec[-1], index), embedding], dim=1)
        timestamp = torch.cat([rec_timestamp, timestamp], dim=1)
        egopose = torch.cat([topk_gather(rec_ego_pose, index), egopose], dim=1)
        reference = torch.cat([topk_gather(all_bbox_preds[..., :3][-1], index), reference], dim=1)
        velo = torch.cat([topk_gather(all_bbox_preds[..., -2:][-1], index), velo], dim=1)
        reference = transform_reference_points(reference, data_ego_pose)
        egopose = data_ego_pose.unsqueeze(1) @ egopose
        # AWML's float64 ages of the new entries meet the float32 queue in one Concat, which the exporter types float32
        # (TensorRT has no float64: 'cast to float64 out-of-tensorrt'): the section returns what the graph returns
        return embedding, reference, timestamp.float(), egopose, velo
