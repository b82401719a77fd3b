"""AWML's FRNet (its own segmentor, encoder, backbone and heads on mmdet3d) and its deploy pre-processing
(``RangeInterpolation``, ``FrustumRangePreprocessor``) as the peers the ``frnet`` specs are proven against.

``record_plan`` (needs mmdet3d, mmengine, mmcv without compiled ops and AWML's ``projects/FRNet`` importable; run by
``tools/record_upstream.py`` and the opt-in live test) builds AWML's FRNet from a training config file through
``--awml-config``'s reader, in deploy mode as AWML's ``deploy/torch_model.py`` builds it, gives it seeded weights,
runs AWML's RangeInterpolation on a synthetic scan and the model's own data preprocessor, then the exported
computation (``_forward``'s ``seg_logit`` and its softmax). It runs under ``torch.use_deterministic_algorithms``:
AWML's frustum-to-pixel placement writes several cells to one pixel at strides above 1, which PyTorch's default CPU
kernel resolves in a thread-dependent order; the deterministic one keeps the last write, as a sequential scatter
(ONNX Runtime) does and as this project's model resolves it (``model.FRNetBackbone._to_pixels``).
``compare`` (needs none of them) makes the inputs with this project's ``interpolate`` and ``group`` and runs this
project's model with the recorded weights loaded strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_specs.frnet.config import FULL, TINY, FRNetConfig
from model_specs.frnet.data import FULL_AZIMUTH_STEPS, TINY_AZIMUTH_STEPS, group, interpolate, lidar_scan
from model_specs.frnet.mmconfig import to_frnet
from model_specs.frnet.model import FRNet
from model_specs.mmconfig import read_config
from model_specs.recording import REGENERATED, Recording, array_sha256, max_abs, scale_of, seed_peer, state_sha256, tensor_problems

PROJECT = "projects/FRNet"
AWML_MODELS = "projects.FRNet.frnet.models"
AWML_TRANSFORMS = "projects.FRNet.frnet.datasets.transforms"
INPUTS = ("points", "coors", "voxel_coors", "inverse_map")
SAMPLED_ROWS = 1024  # points whose logits and probabilities are kept whole; every point's label is kept


@dataclass(frozen=True)
class Plan:
    name: str
    config: str  # relative to tests/data/configs/awml
    spec_config: FRNetConfig
    azimuth_steps: int
    scan_seed: int
    model_seed: int = 2024


PLANS = (Plan("frnet-tiny", "frnet_tiny.py", TINY, azimuth_steps=TINY_AZIMUTH_STEPS, scan_seed=81),
         Plan("frnet", "frnet_t4dataset_ot128.py", FULL, azimuth_steps=FULL_AZIMUTH_STEPS, scan_seed=82))


def awml_inputs(points: np.ndarray, values: Mapping, model) -> tuple[dict[str, torch.Tensor], int]:
    """AWML's RangeInterpolation (the test pipeline's, as deploy/preprocessing.py builds it) and the model's
    FrustumRangePreprocessor on ``points``; (the graph's inputs, the scan's own point count)."""
    import importlib

    from mmdet3d.structures import Det3DDataSample, PointData
    from mmdet3d.structures.points import LiDARPoints

    transforms = importlib.import_module(AWML_TRANSFORMS)
    settings = next(t for t in values["test_pipeline"] if t["type"] == "RangeInterpolation")
    interpolation = transforms.RangeInterpolation(**{k: v for k, v in settings.items() if k != "type"})
    result = interpolation.transform({"points": LiDARPoints(points, points_dim=points.shape[1])})
    sample = Det3DDataSample()
    sample.gt_pts_seg = PointData()
    inputs = model.data_preprocessor({"inputs": {"points": [result["points"].tensor]}, "data_samples": [sample]}, False)["inputs"]
    return {k: inputs[k] for k in INPUTS}, int(result["num_points"])


def build_peer(values: Mapping):
    """AWML's FRNet from the config's model section, deploy mode on (deploy/torch_model.py)."""
    import importlib

    import mmdet3d.models  # noqa: F401 (registers mmdet3d's modules)
    from mmdet3d.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    importlib.import_module(AWML_MODELS)
    model = dict(values["model"])
    model["backbone"] = {**model["backbone"], "deploy": True}
    model["decode_head"] = {**model["decode_head"], "deploy": True}
    with DefaultScope.overwrite_default_scope("mmdet3d"):  # the config's default_scope, for this build only (mmpretrain's come after)
        return MODELS.build(ConfigDict(model)).eval()


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, FRNetConfig]:
    import mmdet3d
    import mmengine

    config = read_config(Path(configs) / plan.config)
    cfg = to_frnet(config, plan.spec_config)
    model = build_peer(config.values)
    shapes, state = seed_peer(model, plan.model_seed)
    scan = lidar_scan(plan.scan_seed, cfg, plan.azimuth_steps)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        inputs, num_points = awml_inputs(scan.points, config.values, model)
        with torch.no_grad():
            logits = model._forward(dict(inputs))["seg_logit"]
    finally:
        torch.use_deterministic_algorithms(deterministic)
    rows = np.sort(np.random.default_rng(plan.model_seed).choice(len(logits), min(SAMPLED_ROWS, len(logits)), replace=False))
    probabilities = torch.softmax(logits, dim=-1)
    arrays = {"rows": rows, "logits": logits.numpy()[rows], "pred_probs": probabilities.numpy()[rows],
              "labels": probabilities.argmax(dim=-1).numpy().astype(np.int16)}
    meta = {
        "versions": {"mmdet3d": mmdet3d.__version__, "mmengine": mmengine.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "config": plan.config,
        "scan_seed": plan.scan_seed,
        "azimuth_steps": plan.azimuth_steps,
        "scan_sha256": array_sha256(scan.points),
        "inputs_sha256": {k: array_sha256(v.numpy()) for k, v in inputs.items()},
        "input_shapes": {k: list(v.shape) for k, v in inputs.items()},
        "num_points": num_points,
        "seed": plan.model_seed,
        "state_shapes": [[k, list(s)] for k, s in shapes],
        "state_sha256": state_sha256(state),
        "weights": {"source": REGENERATED, "seed": plan.model_seed},
        "input": "AWML's RangeInterpolation (test pipeline settings) and the model's FrustumRangePreprocessor on a synthetic scan",
        "output": "softmax of FRNet._forward(...)['seg_logit'] in deploy mode (deploy/torch_model.py's ExportModel), under "
                  "torch.use_deterministic_algorithms (see model_specs/frnet/upstream.py)",
    }
    return Recording(arrays, meta), cfg


@dataclass(frozen=True)
class Comparison:
    inputs_identical: Mapping[str, bool]
    logits: float
    pred_probs: float
    scales: Mapping[str, float]

    def problems(self) -> list[str]:
        found = [f"{name}: this project's differs from AWML's" for name, same in self.inputs_identical.items() if not same]
        return found + tensor_problems({"logits": self.logits, "pred_probs": self.pred_probs}, self.scales)


def compare(recording: Recording, cfg: FRNetConfig) -> Comparison:
    arrays, meta = recording.arrays, recording.meta
    model = FRNet(cfg).eval()
    model.load_state_dict(recording.state_dict(), strict=True)
    scan = lidar_scan(meta["scan_seed"], cfg, meta["azimuth_steps"])
    inputs = group(interpolate(scan.points, cfg), cfg)
    identical = {k: array_sha256(inputs[k].numpy()) == meta["inputs_sha256"][k] for k in INPUTS}
    identical["scan"] = array_sha256(scan.points) == meta["scan_sha256"]
    with torch.no_grad():
        logits = model.logits(**inputs)
    probabilities = torch.softmax(logits, dim=-1)
    identical["labels"] = bool(np.array_equal(probabilities.argmax(dim=-1).numpy(), arrays["labels"]))
    scales = {"logits": scale_of(arrays["logits"]), "pred_probs": scale_of(arrays["pred_probs"])}
    if len(logits) != len(arrays["labels"]):  # another point count: nothing row by row to compare
        return Comparison(identical, float("inf"), float("inf"), scales)
    rows = arrays["rows"]
    return Comparison(identical, max_abs(logits.numpy()[rows], arrays["logits"]), max_abs(probabilities.numpy()[rows], arrays["pred_probs"]), scales)
