"""What an AWML calibration-classifier training config decided for a run, and which file of its ``_base_`` chain
set each value (the report's ``run.facts``): the input channels, the network's depth, the classes and the
transform's depth range and patch size, without opening the config."""

from __future__ import annotations

from model_specs.calibration.config import CalibrationConfig
from pytest_awml.config_reader import ConfigFile
from pytest_awml.facts import ConfigFact


def config_facts(config: ConfigFile, cfg: CalibrationConfig) -> tuple[ConfigFact, ...]:
    """The facts of ``cfg`` (read from ``config``), each with the file that set the key it was read from."""
    backbone = ("model", "backbone")
    return (
        ConfigFact.of("in_channels", cfg.in_channels, config.source_of(*backbone, "in_channels")),
        ConfigFact.of("depth", cfg.depth, config.source_of(*backbone, "depth")),
        ConfigFact.of("class_names", list(cfg.classes), config.source_of("model", "head", "num_classes")),
        ConfigFact.of("max_depth", cfg.max_depth, config.source_of("test_pipeline")),
        ConfigFact.of("dilation_size", cfg.dilation_size, config.source_of("test_pipeline")),
    )
