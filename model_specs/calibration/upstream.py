"""mmpretrain's ImageClassifier and AWML's CalibrationClassificationTransform as the peers the calibration
classifier is proven against.

``record_plan`` (needs mmpretrain, mmengine and AWML's ``autoware_ml`` importable; run by
``tools/record_upstream.py`` and by the opt-in live test) builds mmpretrain's classifier from a training
config file through ``--awml-config``'s reader, gives it seeded weights (:func:`seed_peer`),
writes a calibrated and a miscalibrated synthetic frame to files (a PNG, a 5-column lidar ``.bin``, the
camera matrix and lidar-to-camera transform of an info entry) and runs AWML's own transform on them
(test mode, as its deploy script does), then the classifier as AWML exports it (``model(input)``,
tensor mode). ``compare`` (needs none of them) builds the same frames with this project's ``fuse`` and
runs this project's model with the recorded weights loaded strictly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_specs.calibration.config import FULL, TINY, CalibrationConfig
from model_specs.calibration.data import CalibrationFrame, calibration_frame, fuse
from model_specs.calibration.mmconfig import TRANSFORM, to_calibration
from model_specs.calibration.model import CalibrationClassifier
from model_specs.mmconfig import read_config, type_name
from model_specs.recording import REGENERATED, STATE_PREFIX, Recording, array_sha256, max_abs, scale_of, seed_peer, state_sha256, tensor_problems

AWML_TRANSFORM = "autoware_ml.calibration_classification.datasets.transforms.calibration_classification_transform"
LIDAR_COLUMNS = 5  # the .bin layout AWML's transform reads by default (num_pts_feats): x, y, z, intensity, ring
SAMPLED_PIXELS = 4096  # pixels of a full-size input kept besides its sha256 (most lidar pixels are empty)
FRAMES = (("calibrated", True), ("miscalibrated", False))


@dataclass(frozen=True)
class Plan:
    name: str
    config: str
    spec_config: CalibrationConfig
    size: tuple[int, int]  # (height, width): the deploy profile's smallest frame at full size
    frame_seed: int
    full_tensors: bool
    frames: tuple[str, ...] = tuple(name for name, _ in FRAMES)
    model_seed: int = 2024


PLANS = (
    Plan("calibration-tiny", "calibration_resnet18_5ch_tiny.py", TINY, (64, 96), frame_seed=31, full_tensors=True),
    # one frame at full size keeps CI fast (a 1080 x 1920 ResNet-18 pass takes seconds on a CPU); tiny has both kinds
    Plan("calibration", "calibration_resnet18_5ch.py", FULL, (1080, 1920), frame_seed=41, full_tensors=False, frames=("calibrated",)),
)


def frames(plan_seed: int, size: tuple[int, int], names: tuple[str, ...]) -> dict[str, CalibrationFrame]:
    return {name: calibration_frame(plan_seed + i, *size, calibrated) for i, (name, calibrated) in enumerate(FRAMES) if name in names}


# -- the peers (mmpretrain and AWML's transform, imported only here) ---------------------------------------------

def awml_fused(frame: CalibrationFrame, transform_cfg: Mapping) -> np.ndarray:
    """AWML's transform on the frame written out as an info entry and files; [H, W, 5] float32."""
    import importlib

    import cv2

    transform_class = importlib.import_module(AWML_TRANSFORM).CalibrationClassificationTransform
    with tempfile.TemporaryDirectory() as folder:
        cv2.imwrite(str(Path(folder) / "image.png"), frame.image)
        columns = np.zeros((len(frame.points), LIDAR_COLUMNS), np.float32)
        columns[:, :4] = frame.points
        columns.tofile(Path(folder) / "lidar.bin")
        settings = {k: v for k, v in transform_cfg.items() if k not in ("type", "data_root", "_scope_")}
        transform = transform_class(**{**settings, "miscalibration_probability": 0.0, "data_root": folder})
        info = {"sample_idx": frame.seed,
                "image": {"img_path": "image.png", "cam2img": frame.camera_matrix.tolist(), "lidar2cam": frame.lidar_to_camera.tolist(),
                          "distortion_coefficients": [0.0] * 5},
                "lidar_points": {"lidar_path": "lidar.bin", "num_pts_feats": LIDAR_COLUMNS}}
        return transform.transform(info)["fused_img"]


def build_peer(values: Mapping):
    """mmpretrain's model from the config's model section (``mmpretrain.models`` registers every class it needs;
    its datasets, which ``register_all_modules`` would import too, are not needed)."""
    import mmpretrain.models  # noqa: F401 (registers the models)
    from mmengine.config import ConfigDict
    from mmpretrain.registry import MODELS

    return MODELS.build(ConfigDict(values["model"])).eval()


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, CalibrationConfig]:
    import mmengine
    import mmpretrain

    config = read_config(Path(configs) / plan.config)
    cfg = to_calibration(config, plan.spec_config)
    transform_cfg = next(t for t in config.values["test_pipeline"] if type_name(t) == TRANSFORM)
    model = build_peer(config.values)
    shapes, state = seed_peer(model, plan.model_seed)
    arrays: dict[str, np.ndarray] = {}
    meta_frames = {}
    rng = np.random.default_rng(plan.model_seed)
    for name, frame in frames(plan.frame_seed, plan.size, plan.frames).items():
        fused = np.ascontiguousarray(awml_fused(frame, transform_cfg).transpose(2, 0, 1))  # the deploy script's permute(2, 0, 1)
        with torch.no_grad():
            tensor = torch.from_numpy(fused)[None].float()
            logits = model(tensor)  # mmpretrain's tensor mode: what AWML exports
            pre_logits = model.neck(model.backbone(tensor))[-1]
        arrays[f"{name}/logits"], arrays[f"{name}/pre_logits"] = logits[0].numpy(), pre_logits[0].numpy()
        if plan.full_tensors:
            arrays[f"{name}/input"] = fused
        else:
            flat = fused.reshape(len(fused), -1)
            lidar = np.flatnonzero(flat[3] > 0)
            pixels = np.union1d(rng.choice(lidar, min(SAMPLED_PIXELS, len(lidar)), replace=False),
                                rng.choice(flat.shape[1], SAMPLED_PIXELS, replace=False))
            arrays[f"{name}/pixels"], arrays[f"{name}/input_at_pixels"] = pixels, flat[:, pixels]
        meta_frames[name] = {"seed": frame.seed, "label": frame.label, "input_sha256": array_sha256(fused),
                             "points_sha256": array_sha256(frame.points), "image_sha256": array_sha256(frame.image),
                             "lidar_pixels": int((fused[3] > 0).sum())}
    if plan.full_tensors:
        arrays.update({f"{STATE_PREFIX}{k}": v.numpy() for k, v in state.items()})
    import cv2

    meta = {
        "versions": {"mmpretrain": mmpretrain.__version__, "mmengine": mmengine.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "config": plan.config,
        "size": list(plan.size),
        "frame_seed": plan.frame_seed,
        "frames": meta_frames,
        "seed": plan.model_seed,
        "state_shapes": [[k, list(s)] for k, s in shapes],
        "state_sha256": state_sha256(state),
        "weights": {"source": "stored whole" if plan.full_tensors else REGENERATED, "seed": plan.model_seed},
        "input": f"AWML's {TRANSFORM} (test mode, miscalibration_probability 0: the frame brings its own transform), "
                 "fused_img permuted to channels first as AWML's deploy script does",
        "logits": "mmpretrain ImageClassifier(input) in tensor mode; pre_logits: GlobalAveragePooling of the backbone",
    }
    return Recording(arrays, meta), cfg


# -- the comparison (no mmpretrain needed) -------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    inputs_identical: Mapping[str, bool]
    pre_logits: Mapping[str, float]
    logits: Mapping[str, float]
    scales: Mapping[str, float]

    def problems(self) -> list[str]:
        found = [f"{name}: this project's transform differs from AWML's" for name, same in self.inputs_identical.items() if not same]
        found += tensor_problems(self.pre_logits, self.scales, "pre_logits ")
        found += tensor_problems(self.logits, self.scales, "logits ")
        return found


def compare(recording: Recording, cfg: CalibrationConfig) -> Comparison:
    model = CalibrationClassifier(cfg).eval()
    model.load_state_dict(recording.state_dict(), strict=True)
    arrays, meta = recording.arrays, recording.meta
    identical, pre, logits, scales = {}, {}, {}, {}
    for name, frame in frames(meta["frame_seed"], tuple(meta["size"]), tuple(meta["frames"])).items():
        fused = fuse(frame, cfg)
        same = array_sha256(fused) == meta["frames"][name]["input_sha256"] and array_sha256(frame.points) == meta["frames"][name]["points_sha256"]
        if f"{name}/input" in arrays:
            same = same and np.array_equal(fused, arrays[f"{name}/input"])
        else:
            same = same and np.array_equal(fused.reshape(len(fused), -1)[:, arrays[f"{name}/pixels"]], arrays[f"{name}/input_at_pixels"])
        identical[name] = bool(same)
        with torch.no_grad():
            tensor = torch.from_numpy(fused)[None]
            ours_pre, ours = model.pre_logits(tensor)[0].numpy(), model(tensor)[0].numpy()
        pre[name], logits[name] = max_abs(ours_pre, arrays[f"{name}/pre_logits"]), max_abs(ours, arrays[f"{name}/logits"])
        scales[name] = max(scale_of(arrays[f"{name}/pre_logits"]), scale_of(arrays[f"{name}/logits"]))
    return Comparison(identical, pre, logits, scales)

