"""AWML's own CenterPoint-ShortRange and CenterPoint-ConvNeXtPC as the peers the family specs are proven against.

The recordings are made as ``mmdet3d_peer`` makes ``centerpoint``'s (mmdet3d's ``test_step`` with mmcv's
voxelizer, seeded weights, calibrated heatmap), with the modules those configs name imported from an AWML
checkout (``--awml-root``): ``projects.CenterPoint.models`` (``BackwardPillarFeatureNet`` and AWML's subclasses
of mmdet3d's CenterPoint parts, registered over mmdet3d's) and ``projects.ConvNeXt_PC`` (on mmpretrain's
ConvNeXt). Importing AWML is the only step ``mmdet3d_peer`` does not need; everything else is shared.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from model_specs.centerpoint.family import CONFIGS, MEMBERS, model_config, scene_config
from model_specs.centerpoint.mmdet3d_peer import Plan

# The AWML packages the family's configs import (custom_imports), and the file each must hold.
AWML_PACKAGES = {"projects.CenterPoint.models": "projects/CenterPoint/models/voxel_encoders/pillar_encoder.py",
                 "projects.ConvNeXt_PC": "projects/ConvNeXt_PC/backbones/convnext_pc.py"}

# Scans and calibration per member: the full-size ones with a 64-ring lidar (the file stays small), the
# heatmap placed so that tens of boxes survive circle NMS (a box comparison on a few boxes proves little).
_DETECTIONS = {"centerpoint-shortrange": 120, "centerpoint-shortrange-tiny": 80, "centerpoint-convnextpc": 120,
               "centerpoint-convnextpc-small": 120, "centerpoint-convnextpc-tiny": 40}
# sigmoid(-2.2 + 8) = 0.997: the best full-size scores stay apart in float32 (see Plan.heatmap_spread)
HEATMAP_SPREAD = 8.0
_SEEDS = {"centerpoint-shortrange": 21, "centerpoint-shortrange-tiny": 22, "centerpoint-convnextpc": 23,
          "centerpoint-convnextpc-small": 24, "centerpoint-convnextpc-tiny": 25}


def plans() -> tuple[Plan, ...]:
    """One recording per family member, each read from its config file under ``CONFIGS``."""
    out = []
    for name, member in MEMBERS.items():
        cfg = model_config(name)
        out.append(Plan(name, member.config, cfg, scene_config(name, cfg), scene_seed=_SEEDS[name], full_tensors=member.tiny,
                        calibration_detections=_DETECTIONS[name], heatmap_spread=None if member.tiny else HEATMAP_SPREAD))
    return tuple(out)


def import_awml(root: Path) -> dict:
    """Register AWML's modules from the checkout at ``root`` (mmdet3d and mmpretrain must import); returns what a
    recording's meta says about them (the checkout's commit, from an ``AWML_COMMIT`` file beside ``projects`` when
    the checkout is an archive, and mmpretrain's version)."""
    root = Path(root).resolve()
    missing = [path for path in AWML_PACKAGES.values() if not (root / path).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} is not an AWML checkout with {', '.join(missing)}")
    import mmpretrain
    from mmdet3d.utils import register_all_modules

    register_all_modules()  # mmdet3d's registrations first: AWML's (force=True) then replace them
    sys.path.insert(0, str(root))
    for package in AWML_PACKAGES:
        importlib.import_module(package)
    head = root / "AWML_COMMIT"
    return {"awml_commit": head.read_text().strip() if head.is_file() else "unknown", "awml_modules": list(AWML_PACKAGES),
            "mmpretrain": mmpretrain.__version__}


__all__ = ["AWML_PACKAGES", "CONFIGS", "import_awml", "plans"]
