"""The CenterPoint specs: ``centerpoint`` (AWML j6gen2 size) and ``centerpoint-tiny`` (for tests)."""

from __future__ import annotations

from pathlib import Path

import torch

from model_specs.centerpoint.config import FULL, TINY, CenterPointConfig
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport, seeded
from model_specs.centerpoint.scene import Scene, SceneConfig, make_scene
from model_specs.centerpoint.voxelize import decorate, scatter, voxelize
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

# fp32 parity: ONNX Runtime's kernels sum in another order than PyTorch's, over 20+ layers; the
# bound is 1e-4 relative to magnitudes of order 1-100, far below what a wrong op or weight gives.
FP32 = {"*": Tolerance(atol=1e-4, rtol=1e-4)}
# fp16/tf32 keep 10 mantissa bits: honest errors reach ~1e-2 on activations of order 1.
REDUCED = {"*": Tolerance(atol=2e-2, rtol=2e-2)}


def _build(cfg: CenterPointConfig):
    def build_model(checkpoint: Path | None, seed: int) -> CenterPoint:
        model = seeded(cfg, seed)
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state), strict=True)
        return model.eval()

    return build_model


def _samples(scene: SceneConfig):
    def make_samples(count: int, seed: int) -> list[Scene]:
        return [make_scene(seed * 1000 + i, scene) for i in range(count)]

    return make_samples


def _encoder_inputs(cfg: CenterPointConfig):
    def make_inputs(model: CenterPoint, sample: Scene) -> dict[str, torch.Tensor]:
        return {"input_features": decorate(voxelize(torch.from_numpy(sample.points), cfg), cfg)}

    return make_inputs


def _backbone_inputs(cfg: CenterPointConfig):
    def make_inputs(model: CenterPoint, sample: Scene) -> dict[str, torch.Tensor]:
        voxels = voxelize(torch.from_numpy(sample.points), cfg)
        pillars = model.pts_voxel_encoder(decorate(voxels, cfg))
        return {"spatial_features": scatter(pillars, voxels.coors, cfg)}

    return make_inputs


def make_spec(name: str, cfg: CenterPointConfig, scene: SceneConfig, encoder_latency: LatencySettings,
              backbone_latency: LatencySettings) -> ModelSpec:
    nx, ny, _ = cfg.grid_size
    hy, hx = cfg.head_size
    voxels = Dim("num_voxels", cfg.min_voxels, cfg.opt_voxels, cfg.max_voxels)
    tolerances = {"fp32": FP32, "fp16": REDUCED, "tf32": REDUCED}
    onnx = OnnxOptions(opset=17)
    return ModelSpec(
        name=name,
        description="CenterPoint (PointPillars) as AWML deploys it, seeded weights unless a checkpoint is given",
        build_model=_build(cfg),
        make_samples=_samples(scene),
        sample_kind="point clouds",
        params={"model": cfg, "scene": scene},
        components=(
            Component(
                name="pts_voxel_encoder",
                extract=VoxelEncoderExport,
                make_inputs=_encoder_inputs(cfg),
                inputs=(TensorSpec("input_features", (voxels, cfg.max_points_per_voxel, cfg.decorated_features)),),
                outputs=(TensorSpec("pillar_features", (voxels, 1, cfg.pfn_channels[-1])),),
                tolerances=tolerances,
                onnx=onnx,
                latency=encoder_latency,
            ),
            Component(
                name="pts_backbone_neck_head",
                extract=BackboneNeckHeadExport,
                make_inputs=_backbone_inputs(cfg),
                inputs=(TensorSpec("spatial_features", (1, cfg.pfn_channels[-1], ny, nx)),),
                outputs=tuple(TensorSpec(head, (1, channels, hy, hx)) for head, channels in cfg.heads),
                tolerances=tolerances,
                onnx=onnx,
                latency=backbone_latency,
            ),
        ),
    )


SPEC = make_spec("centerpoint", FULL, SceneConfig(max_range=FULL.point_cloud_range[3]),
                 encoder_latency=LatencySettings(rounds=10, warmup_rounds=2),
                 backbone_latency=LatencySettings(rounds=3, warmup_rounds=1))

# The tiny scene: a 32-ring lidar whose reach covers the 51.2 m square grid's corners.
TINY_SPEC = make_spec("centerpoint-tiny", TINY, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12),
                      encoder_latency=LatencySettings(rounds=5, warmup_rounds=1),
                      backbone_latency=LatencySettings(rounds=5, warmup_rounds=1))
