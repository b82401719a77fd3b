"""What an AWML CenterPoint training config decided for a run, and which file of its ``_base_`` chain set each
value (the report's ``run.facts``): the reader of a report sees the point features and past sweeps, the
classes, the voxel size, range and grid without opening the config."""

from __future__ import annotations

from model_specs.centerpoint.config import CenterPointConfig
from pytest_awml.config_reader import ConfigFile
from pytest_awml.facts import ConfigFact

VOXEL_LAYER = ("model", "data_preprocessor", "voxel_layer")


def config_facts(config: ConfigFile, cfg: CenterPointConfig) -> tuple[ConfigFact, ...]:
    """The facts of ``cfg`` (read from ``config``), each with the file that set the key it was read from."""
    voxel_size = config.source_of(*VOXEL_LAYER, "voxel_size")
    return (
        ConfigFact.of("point_features", list(cfg.point_feature_names), config.source_of("model", "pts_voxel_encoder", "in_channels")),
        ConfigFact.of("past_sweeps", cfg.past_sweeps, config.source_of("test_pipeline")),
        ConfigFact.of("class_names", list(cfg.class_names), config.source_of("model", "pts_bbox_head", "tasks")),
        ConfigFact.of("voxel_size", list(cfg.voxel_size), voxel_size),
        ConfigFact.of("point_cloud_range", list(cfg.point_cloud_range), config.source_of(*VOXEL_LAYER, "point_cloud_range")),
        ConfigFact.of("grid_size", list(cfg.grid_size), voxel_size),
    )
