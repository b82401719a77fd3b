"""mmdet's YOLOX with AWML's own ELANDarknet and YOLOXPAFPN_ELAN as the peer YOLOX-ELAN is proven against.

``record_plan`` (needs mmdet, mmengine and AWML's ``projects/YOLOX_opt_elan`` importable; run by
``tools/record_upstream.py`` and by the opt-in live test) builds mmdet's YOLOX from a training config
file through ``--awml-config``'s reader, gives it seeded weights (:func:`reference_weights`, with the
same trained-like stem/objectness scaling and objectness calibration the spec's seeded model gets),
letterboxes a synthetic camera frame with mmdet's own test pipeline (Resize keep-ratio, Pad to square
with 114, DetDataPreprocessor), runs backbone, neck and head, lays the head outputs out as the
deployed graph does (``model.export_layout``) and decodes them with mmdet's ``predict_by_feat`` (up to
NMS where mmcv's compiled ``nms`` is absent). ``compare`` (needs none of them) runs this project's
model with the recorded weights loaded strictly and measures each stage; every CI run does that on the
recordings under ``tests/data/upstream/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_specs.mmconfig import TrainingConfig, read_config
from model_specs.recording import (
    REGENERATED,
    STATE_PREFIX,
    Recording,
    array_sha256,
    max_abs,
    reference_weights,
    scale_of,
    state_sha256,
    tensor_problems,
)
from model_specs.yolox.config import FULL, TINY, YoloxConfig
from model_specs.yolox.data import camera_frames, network_input
from model_specs.yolox.mmconfig import to_yolox
from model_specs.yolox.model import YoloxElan, export_layout, objectness_shift, trained_like
from model_specs.yolox.postprocess import mmdet_candidates

# the AWML modules that register ELANDarknet and YOLOXPAFPN_ELAN into mmdet's registry
AWML_MODULES = "projects.YOLOX_opt_elan.yolox.models"
# feature-map positions kept per level, and output rows kept at full size besides the best-scoring ones
SAMPLED_CELLS, SAMPLED_ROWS, BEST_ROWS = 64, 4096, 1000
# boxes decoded from outputs within TENSOR_RTOL: within this many pixels and score units
BOX_TOL = 1e-3
MIN_CANDIDATES = 10  # a decode comparison needs candidates: a recording with fewer proves nothing


@dataclass(frozen=True)
class Plan:
    """One recording: the config file, the spec configuration it must read as, the frame, and whether the
    weights and the output are kept whole (tiny) or regenerated and sampled (full size, for git's sake)."""

    name: str
    config: str
    spec_config: YoloxConfig
    frame_seed: int
    full_tensors: bool
    model_seed: int = 2024


PLANS = (
    Plan("yolox-tiny", "yolox_elan_tiny.py", TINY, frame_seed=21, full_tensors=True),
    Plan("yolox", "yolox_elan_t4dataset.py", FULL, frame_seed=22, full_tensors=False),
)


# -- the peer (mmdet and AWML's modules, imported only here) ------------------------------------------------

def build_peer(config: TrainingConfig):
    """mmdet's YOLOX from the config's model section, AWML's backbone and neck registered."""
    import importlib

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    importlib.import_module(AWML_MODULES)
    register_all_modules()
    return MODELS.build(ConfigDict(config.values["model"])).eval()


def mmdet_input(config: TrainingConfig, model, frame: np.ndarray) -> torch.Tensor:
    """The frame through the config's own test pipeline (its image transforms) and the model's data preprocessor."""
    from mmdet.registry import TRANSFORMS
    from mmengine.config import ConfigDict

    results: dict[str, Any] = {"img": frame, "img_shape": frame.shape[:2], "ori_shape": frame.shape[:2], "img_id": 0, "img_path": "frame.png"}
    for step in config.values["test_pipeline"]:
        if step["type"] in ("LoadImageFromFile", "LoadAnnotations"):
            continue  # the frame is in memory and has no annotations
        results = TRANSFORMS.build(ConfigDict(step))(results)
    with torch.no_grad():
        return model.data_preprocessor({"inputs": [results["inputs"]], "data_samples": [results["data_samples"]]}, False)["inputs"]


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, YoloxConfig]:
    """Build mmdet's model from ``configs / plan.config`` through ``--awml-config``'s reader and record it."""
    import mmcv
    import mmdet
    import mmengine

    config = read_config(Path(configs) / plan.config)
    cfg = to_yolox(config, plan.spec_config)
    model = build_peer(config)
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    state = reference_weights(shapes, plan.model_seed)
    overrides = trained_like(state, len(cfg.strides))
    model.load_state_dict({**state, **overrides}, strict=True)
    frame = camera_frames(plan.frame_seed, cfg, 1).frames[0]
    images = mmdet_input(config, model, frame)
    with torch.no_grad():
        shift = objectness_shift(_heads(model, images), cfg.calibration_detections, cfg.autoware_score_threshold)
        for level, conv in enumerate(model.bbox_head.multi_level_conv_obj):
            conv.bias.add_(shift)
            overrides[f"bbox_head.multi_level_conv_obj.{level}.bias"] = conv.bias.detach().clone()
        backbone = model.backbone(images)
        neck = model.neck(backbone)
        levels = list(zip(*model.bbox_head(neck), strict=True))
        output = export_layout(levels)[0].numpy()
        (candidates,) = model.bbox_head.predict_by_feat(*zip(*levels, strict=True), batch_img_metas=[{"img_shape": cfg.input_size}],
                                                        cfg=model.bbox_head.test_cfg, rescale=False, with_nms=False)
    final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    arrays: dict[str, np.ndarray] = {
        "candidates/boxes": candidates.bboxes.numpy(), "candidates/scores": candidates.scores.numpy(),
        "candidates/labels": candidates.labels.numpy()}
    rng = np.random.default_rng(plan.model_seed)
    for stage, maps in (("backbone", backbone), ("neck", neck)):
        for level, fmap in enumerate(maps):
            flat = fmap[0].flatten(1).numpy()
            cells = np.sort(rng.choice(flat.shape[1], min(SAMPLED_CELLS, flat.shape[1]), replace=False))
            arrays[f"{stage}/{level}"], arrays[f"{stage}_cells/{level}"] = flat[:, cells], cells
    if plan.full_tensors:
        arrays.update({f"{STATE_PREFIX}{k}": v.numpy() for k, v in final_state.items()})
        arrays.update(input=images[0].numpy().astype(np.uint8), output=output)
    else:
        arrays.update({f"{STATE_PREFIX}{k}": v.numpy() for k, v in overrides.items()})
        best = np.argsort(-(output[:, 4] * output[:, 5:].max(1)), kind="stable")[:BEST_ROWS]
        rows = np.union1d(best, rng.choice(len(output), min(SAMPLED_ROWS, len(output)), replace=False))
        arrays.update(output_rows=rows, output=output[rows])
    meta = {
        "versions": {"mmdet": mmdet.__version__, "mmcv": mmcv.__version__, "mmengine": mmengine.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "config": plan.config,
        "frame_seed": plan.frame_seed,
        "frame_sha256": array_sha256(frame),
        "input_sha256": array_sha256(images.numpy()),
        "seed": plan.model_seed,
        "objectness_shift": shift,
        "state_shapes": [[k, list(s)] for k, s in shapes],
        "state_sha256": state_sha256(final_state),
        "weights": {"source": "stored whole" if plan.full_tensors else REGENERATED, "seed": plan.model_seed,
                    "adjusted": "model_specs.yolox.model.trained_like, then the objectness biases calibrated on the frame"},
        "output": "tier4/YOLOX's export layout (model_specs.yolox.model.export_layout) of mmdet's YOLOXHead outputs",
        "candidates": "mmdet YOLOXHead.predict_by_feat(rescale=False, with_nms=False): boxes in network-input pixels",
        "nms": "not recorded: the decode is recorded up to NMS, which is mmcv's compiled nms (this project's NMS follows its semantics)",
    }
    return Recording(arrays, meta), cfg


def _heads(model, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    cls, reg, obj = model.bbox_head(model.neck(model.backbone(images)))
    return list(zip(cls, reg, obj, strict=True))


# -- the comparison (no mmdet needed) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """This project's YOLOX against a recording: each figure is a max |difference|."""

    input_identical: bool
    features: Mapping[str, float]
    feature_scale: Mapping[str, float]
    output: float
    output_scale: float
    candidates: tuple[int, int]  # (ours, mmdet's) anchors at or above the evaluation threshold
    labels_equal: bool
    box: float
    score: float
    decode_of_recorded_output: tuple[int, int] = (0, 0)  # candidate counts when ours decodes mmdet's own output

    def problems(self) -> list[str]:
        """Every stage that does not agree, as a sentence; empty when all do."""
        found = [] if self.input_identical else ["the letterboxed input differs from mmdet's test pipeline's"]
        found += tensor_problems(self.features, self.feature_scale)
        found += tensor_problems({"output": self.output}, {"output": self.output_scale})
        if self.candidates[1] < MIN_CANDIDATES:
            found.append(f"the recording has {self.candidates[1]} candidates, fewer than {MIN_CANDIDATES}")
        if self.candidates[0] != self.candidates[1] or not self.labels_equal or self.box > BOX_TOL or self.score > BOX_TOL:
            found.append(f"mmdet's decode: {self.candidates[0]} candidates against {self.candidates[1]}, labels equal {self.labels_equal}, "
                         f"boxes off by {self.box:.3g} px, scores by {self.score:.3g}")
        if self.decode_of_recorded_output[0] != self.decode_of_recorded_output[1]:
            found.append(f"decoding mmdet's own output gives {self.decode_of_recorded_output[0]} candidates, "
                         f"mmdet {self.decode_of_recorded_output[1]}")
        return found


def compare(recording: Recording, cfg: YoloxConfig) -> Comparison:
    """Run this project's YOLOX (weights loaded strictly) on the recorded frame, stage by stage."""
    arrays = recording.arrays
    model = YoloxElan(cfg).eval()
    model.load_state_dict(recording.state_dict(), strict=True)
    frames = camera_frames(recording.meta["frame_seed"], cfg, 1)
    images = torch.from_numpy(network_input(frames, cfg))
    identical = array_sha256(frames.frames[0]) == recording.meta["frame_sha256"] and array_sha256(images.numpy()) == recording.meta["input_sha256"]
    if "input" in arrays:
        identical = identical and np.array_equal(images[0].numpy(), arrays["input"].astype(np.float32))
    with torch.no_grad():
        backbone = model.backbone(images)
        neck = model.neck(backbone)
        output = export_layout([model.bbox_head.forward_single(x, level) for level, x in enumerate(neck)])[0].numpy()
    features, scales = {}, {}
    for stage, maps in (("backbone", backbone), ("neck", neck)):
        for level, fmap in enumerate(maps):
            name = f"{stage}/{level}"
            ours = fmap[0].flatten(1).numpy()
            cells = arrays[f"{stage}_cells/{level}"]
            features[name] = max_abs(ours[:, cells] if cells.max() < ours.shape[1] else ours[:, :0], arrays[name])
            scales[name] = scale_of(arrays[name])
    ours_rows = output[arrays["output_rows"]] if "output_rows" in arrays else output
    boxes, scores, labels, _ = mmdet_candidates(output, cfg)
    theirs = {k: np.array(arrays[f"candidates/{k}"]) for k in ("boxes", "scores", "labels")}
    same_count = len(scores) == len(theirs["scores"])
    recorded_count = (len(mmdet_candidates(arrays["output"], cfg)[1]), len(theirs["scores"])) if "output_rows" not in arrays else (0, 0)
    return Comparison(
        input_identical=identical,
        features=features,
        feature_scale=scales,
        output=max_abs(ours_rows, arrays["output"]),
        output_scale=scale_of(arrays["output"]),
        candidates=(len(scores), len(theirs["scores"])),
        labels_equal=same_count and np.array_equal(labels.numpy(), theirs["labels"]),
        box=max_abs(boxes.numpy(), theirs["boxes"]) if same_count else math.inf,
        score=max_abs(scores.numpy(), theirs["scores"]) if same_count else math.inf,
        decode_of_recorded_output=recorded_count,
    )
