"""mmpretrain's MobileNetV2 ImageClassifier, and AWML's evaluation pipeline (its ``CropROI``, mmcv's ``Resize`` and
``Pad``, mmpretrain's ``PackInputs`` and ``ClsDataPreprocessor``), as the peers the traffic-light classifiers are
proven against.

``record_plan`` (needs mmpretrain, mmengine, mmcv, OpenCV and AWML's ``projects/MobileNetv2`` importable; run by
``tools/record_upstream.py`` and the opt-in live test) builds the classifier from a training config file through
``--awml-config``'s reader, gives it seeded weights (:func:`seed_peer`), writes a synthetic frame to a PNG
and runs the config's own evaluation pipeline (``val_dataloader.dataset.pipeline``, with each light's box as
``CropROI`` reads it) and ``data_preprocessor`` on it, then the classifier: ``model(input, mode="tensor")`` (the
logits) and their softmax, which mmdeploy's rewrite of ``BaseClassifier.forward`` appends to the exported graph
(mmdeploy is not run: its rewrite is one ``F.softmax(dim=-1)``). ``compare`` (needs none of them) builds the same
crops with this project's ``crops`` and runs this project's model with the recorded weights loaded strictly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_specs.mmconfig import read_config
from model_specs.mobilenetv2.config import CAR, CAR_TINY, PEDESTRIAN, ClassifierConfig
from model_specs.mobilenetv2.data import TrafficLightFrame, crops, traffic_light_frame
from model_specs.mobilenetv2.mmconfig import to_classifier
from model_specs.mobilenetv2.model import TrafficLightClassifier
from model_specs.recording import REGENERATED, Recording, array_sha256, max_abs, scale_of, seed_peer, state_sha256, tensor_problems

AWML_TRANSFORMS = "projects.MobileNetv2.mobilenet.datasets.pipelines.transforms"  # registers CropROI
PROJECT = "projects/MobileNetv2"  # what of an AWML checkout a recording imports
SAMPLED_PIXELS = 4096  # input values of a full-size recording kept besides the input's sha256


@dataclass(frozen=True)
class Plan:
    name: str
    config: str  # relative to tests/data/configs/awml
    spec_config: ClassifierConfig
    frame_seed: int
    full_tensors: bool
    model_seed: int = 2024


PLANS = (
    Plan("mobilenetv2-car-tiny", "mobilenetv2_tlr_car_tiny.py", CAR_TINY, frame_seed=51, full_tensors=True),
    Plan("mobilenetv2-car", "mobilenetv2_tlr_car.py", CAR, frame_seed=61, full_tensors=False),
    Plan("mobilenetv2-pedestrian", "mobilenetv2_tlr_pedestrian.py", PEDESTRIAN,
         frame_seed=71, full_tensors=False),
)


def frame(plan_seed: int, cfg: ClassifierConfig) -> TrafficLightFrame:
    return traffic_light_frame(plan_seed, cfg.classes)


# -- the peers (mmpretrain, mmcv and AWML's CropROI, imported only here) -------------------------------------------

def awml_crops(sample: TrafficLightFrame, values: Mapping) -> torch.Tensor:
    """The config's evaluation pipeline on every box of ``sample`` (written to a PNG, read back by mmcv's
    LoadImageFromFile), batched by its ``data_preprocessor``: [N, 3, S, S] float32."""
    import importlib

    import cv2
    import mmpretrain.datasets.transforms  # registers mmcv's Resize, Pad, LoadImageFromFile and PackInputs
    import mmpretrain.models  # noqa: F401 (registers ClsDataPreprocessor)
    from mmcv.transforms import Compose
    from mmengine.config import ConfigDict
    from mmpretrain.registry import MODELS, TRANSFORMS

    importlib.import_module(AWML_TRANSFORMS)
    steps = [TRANSFORMS.build(ConfigDict(step)) for step in values["val_dataloader"]["dataset"]["pipeline"]]
    preprocessor = MODELS.build(ConfigDict({"type": "ClsDataPreprocessor", **values["data_preprocessor"]}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.png"
        cv2.imwrite(str(path), sample.image)
        packed = [Compose(steps)({"img_path": str(path), "bbox": box.tolist()}) for box in sample.boxes]
    batch = preprocessor({"inputs": [p["inputs"] for p in packed], "data_samples": [p["data_samples"] for p in packed]}, False)
    return batch["inputs"]


def build_peer(values: Mapping):
    """mmpretrain's model from the config's model section (``mmpretrain.models`` registers every class it needs)."""
    import mmpretrain.models  # noqa: F401 (registers the models)
    from mmengine.config import ConfigDict
    from mmpretrain.registry import MODELS

    return MODELS.build(ConfigDict(values["model"])).eval()


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, ClassifierConfig]:
    import cv2
    import mmcv
    import mmengine
    import mmpretrain

    config = read_config(Path(configs) / plan.config)
    cfg = to_classifier(config, plan.spec_config)
    model = build_peer(config.values)
    shapes, state = seed_peer(model, plan.model_seed)
    sample = frame(plan.frame_seed, cfg)
    inputs = awml_crops(sample, config.values)
    with torch.no_grad():
        logits = model(inputs, mode="tensor")
        pre_logits = model.neck(model.backbone(inputs))[-1]
        output = torch.nn.functional.softmax(logits, dim=-1)  # mmdeploy's end-to-end classifier
    arrays = {"pre_logits": pre_logits.numpy(), "logits": logits.numpy(), "output": output.numpy()}
    flat = inputs.numpy().reshape(-1)
    if plan.full_tensors:
        arrays["input"] = inputs.numpy()
    else:
        pixels = np.sort(np.random.default_rng(plan.model_seed).choice(flat.size, SAMPLED_PIXELS, replace=False))
        arrays["pixels"], arrays["input_at_pixels"] = pixels, flat[pixels]
    meta = {
        "versions": {"mmpretrain": mmpretrain.__version__, "mmengine": mmengine.__version__, "mmcv": mmcv.__version__,
                     "opencv": cv2.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "config": plan.config,
        "frame_seed": plan.frame_seed,
        "boxes": sample.boxes.tolist(),
        "labels": sample.labels.tolist(),
        "image_sha256": array_sha256(sample.image),
        "input_sha256": array_sha256(inputs.numpy()),
        "input_shape": list(inputs.shape),
        "seed": plan.model_seed,
        "state_shapes": [[k, list(s)] for k, s in shapes],
        "state_sha256": state_sha256(state),
        "weights": {"source": REGENERATED, "seed": plan.model_seed},
        "input": "the config's val_dataloader pipeline (LoadImageFromFile of a PNG, AWML's CropROI of each box, mmcv's keep-ratio "
                 "Pillow Resize and Pad to square, mmpretrain's PackInputs) and its data_preprocessor (ClsDataPreprocessor)",
        "output": "softmax of mmpretrain ImageClassifier(input, mode='tensor'), as mmdeploy's rewrite exports it; logits and "
                  "pre_logits (GlobalAveragePooling of the backbone) before it",
    }
    return Recording(arrays, meta), cfg


# -- the comparison (no mmpretrain needed) -------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    input_identical: bool
    pre_logits: float
    logits: float
    output: float
    scales: Mapping[str, float]

    def problems(self) -> list[str]:
        found = [] if self.input_identical else ["this project's crops differ from AWML's pipeline's"]
        return found + tensor_problems({"pre_logits": self.pre_logits, "logits": self.logits, "output": self.output}, self.scales)


def compare(recording: Recording, cfg: ClassifierConfig) -> Comparison:
    arrays, meta = recording.arrays, recording.meta
    model = TrafficLightClassifier(cfg).eval()
    model.load_state_dict(recording.state_dict(), strict=True)
    sample = frame(meta["frame_seed"], cfg)
    inputs = crops(sample, cfg)
    same = array_sha256(sample.image) == meta["image_sha256"] and array_sha256(inputs.numpy()) == meta["input_sha256"]
    if "input" in arrays:
        same = same and np.array_equal(inputs.numpy(), arrays["input"])
    else:
        same = same and np.array_equal(inputs.numpy().reshape(-1)[arrays["pixels"]], arrays["input_at_pixels"])
    with torch.no_grad():
        pre, logits, output = model.pre_logits(inputs).numpy(), model.logits(inputs).numpy(), model(inputs).numpy()
    scales = {name: scale_of(arrays[name]) for name in ("pre_logits", "logits", "output")}
    return Comparison(bool(same), max_abs(pre, arrays["pre_logits"]), max_abs(logits, arrays["logits"]), max_abs(output, arrays["output"]), scales)
