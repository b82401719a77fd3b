"""The Autoware hand-off: the two ONNX files and ``centerpoint_ml_package.param.yaml``, checked
against each other — the consistency AWML only guards by comments."""

from __future__ import annotations

from pathlib import Path

import torch

from exporters.onnx_export import OnnxOptions, export_onnx
from exporters.signature import Dim, TensorSpec
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport
from pytest_awml.errors import ArtifactError

PARAM_FILE = "centerpoint_ml_package.param.yaml"


def file_names(name: str) -> tuple[str, str]:
    return f"pts_voxel_encoder_{name}.onnx", f"pts_backbone_neck_head_{name}.onnx"


def write_bundle(model: CenterPoint, cfg: CenterPointConfig, folder: Path, name: str) -> list[Path]:
    """Export both graphs as Autoware expects them (rotation in its y-axis convention) plus the
    parameter file, then verify the three agree; raise :class:`ArtifactError` if they do not."""
    import yaml  # PyYAML writes the ROS 2 parameter file; a hand-written emitter would get quoting wrong

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder_name, head_name = file_names(name)
    nx, ny, _ = cfg.grid_size
    hy, hx = cfg.head_size
    voxels = Dim("num_voxels", cfg.min_voxels, cfg.opt_voxels, cfg.max_voxels)
    width = cfg.decorated_features
    with torch.no_grad():
        export_onnx(VoxelEncoderExport(model).eval(), (torch.zeros(cfg.opt_voxels, cfg.max_points_per_voxel, width),), folder / encoder_name,
                    component=f"{name}/pts_voxel_encoder", inputs=(TensorSpec("input_features", (voxels, cfg.max_points_per_voxel, width)),),
                    outputs=(TensorSpec("pillar_features", (voxels, 1, cfg.pfn_channels[-1])),), options=OnnxOptions(opset=cfg.opset))
        export_onnx(BackboneNeckHeadExport(model, rot_y_axis_reference=True).eval(), (torch.zeros(1, cfg.pfn_channels[-1], ny, nx),),
                    folder / head_name, component=f"{name}/pts_backbone_neck_head",
                    inputs=(TensorSpec("spatial_features", (1, cfg.pfn_channels[-1], ny, nx)),),
                    outputs=tuple(TensorSpec(h, (1, c, hy, hx)) for h, c in cfg.heads), options=OnnxOptions(opset=cfg.opset),
                    metadata={"rot_y_axis_reference": "true"})
    params = {"/**": {"ros__parameters": {"model_params": {
        "class_names": list(cfg.class_names),
        "point_feature_size": cfg.point_features,
        "max_voxel_size": cfg.max_voxels,
        "point_cloud_range": list(cfg.point_cloud_range),
        "voxel_size": list(cfg.voxel_size),
        "downsample_factor": cfg.out_size_factor,
        "encoder_in_feature_size": width,
        "has_variance": False,
        "has_twist": True,
    }}}}
    (folder / PARAM_FILE).write_text(yaml.safe_dump(params, sort_keys=False))
    problems = check_bundle(folder, name, cfg)
    if problems:
        raise ArtifactError(f"the Autoware bundle in {folder} is inconsistent: " + "; ".join(problems))
    return [folder / encoder_name, folder / head_name, folder / PARAM_FILE]


def check_bundle(folder: Path, name: str, cfg: CenterPointConfig) -> list[str]:
    """Every figure of the parameter file against the ONNX shapes and the spec."""
    import onnx
    import yaml

    folder = Path(folder)
    params = yaml.safe_load((folder / PARAM_FILE).read_text())["/**"]["ros__parameters"]["model_params"]
    encoder_name, head_name = file_names(name)
    dims = lambda value: [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]  # noqa: E731
    encoder, head = onnx.load(folder / encoder_name), onnx.load(folder / head_name)
    problems = []
    r, v = params["point_cloud_range"], params["voxel_size"]
    grid = [round((r[i + 3] - r[i]) / v[i]) for i in range(2)]
    spatial = dims(head.graph.input[0])
    if spatial[2:] != [grid[1], grid[0]]:
        problems.append(f"grid from range / voxel size is {grid[1]}x{grid[0]}, the head's input is {spatial[2]}x{spatial[3]}")
    if dims(encoder.graph.input[0])[2] != params["encoder_in_feature_size"]:
        problems.append(f"encoder_in_feature_size {params['encoder_in_feature_size']} != encoder input width {dims(encoder.graph.input[0])[2]}")
    heatmap = next(o for o in head.graph.output if o.name == "heatmap")
    if dims(heatmap)[1] != len(params["class_names"]):
        problems.append(f"{len(params['class_names'])} class_names but the heatmap has {dims(heatmap)[1]} channels")
    if [spatial[2] // params["downsample_factor"], spatial[3] // params["downsample_factor"]] != dims(heatmap)[2:]:
        problems.append(f"downsample_factor {params['downsample_factor']} does not map {spatial[2:]} to the heads' {dims(heatmap)[2:]}")
    if params["max_voxel_size"] != cfg.max_voxels or params["point_feature_size"] != cfg.point_features:
        problems.append("max_voxel_size / point_feature_size differ from the spec's voxelizer")
    meta = {p.key: p.value for p in head.metadata_props}
    if meta.get("rot_y_axis_reference") != "true":
        problems.append(f"{head_name} was not exported with rot_y_axis_reference")
    return problems
