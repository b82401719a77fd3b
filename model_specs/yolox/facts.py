"""What an AWML YOLOX training config decided for a run, and which file of its ``_base_`` chain set each value
(the report's ``run.facts``): the input size and letterbox pad, the classes, the strides and the evaluation
decoder's thresholds, without opening the config."""

from __future__ import annotations

from model_specs.yolox.config import YoloxConfig
from pytest_awml.config_reader import ConfigFile
from pytest_awml.facts import ConfigFact


def config_facts(config: ConfigFile, cfg: YoloxConfig) -> tuple[ConfigFact, ...]:
    """The facts of ``cfg`` (read from ``config``), each with the file that set the key it was read from."""
    head = ("model", "bbox_head")
    return (
        ConfigFact.of("input_size", list(cfg.input_size), config.source_of("test_pipeline")),
        ConfigFact.of("pad_value", cfg.pad_value, config.source_of("test_pipeline")),
        ConfigFact.of("class_names", list(cfg.classes), config.source_of("classes") if "classes" in config.values
                      else config.source_of(*head, "num_classes")),
        ConfigFact.of("strides", list(cfg.strides), config.source_of(*head, "strides")),
        ConfigFact.of("score_threshold", cfg.eval_score_threshold, config.source_of("model", "test_cfg", "score_thr")),
        ConfigFact.of("nms_iou", cfg.eval_nms_iou, config.source_of("model", "test_cfg", "nms", "iou_threshold")),
    )
