"""The project-written configs in tests/data/configs/awml/ that stand for AWML's own files hold AWML's values
(opt-in: ``pytest -m upstream`` with ``$AWML_ROOT`` naming an AWML 7a6ec07 checkout).

The default run reads only the project-written files (the project copies no upstream file in); this check is what
lets a test say that what it reads is what AWML's own file says: each pair, read with its ``_base_`` chain through
``--awml-config``'s reader, must give the same values, key for key.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_specs.mmconfig import read_config

pytestmark = pytest.mark.upstream

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
MOBILENET = "projects/MobileNetv2/configs"
# project-written file -> the AWML 7a6ec07 file whose structure and values it holds
EQUIVALENTS = {
    "mobilenetv2_tlr_car.py": f"{MOBILENET}/t4dataset/MobileNetv2-CarTrafficLight/mobilenet-v2_tlr_car_t4dataset.py",
    "mobilenetv2_tlr_pedestrian.py": f"{MOBILENET}/t4dataset/MobileNetv2-PedestrianTrafficLight/mobilenet-v2_tlr_ped_t4dataset.py",
    **{f"deploy_mobilenetv2_car_batch{b}.py": f"{MOBILENET}/deploy/MobileNetv2-CarTrafficLight/car_mobilenet-v2-224x224_batch_{b}.py"
       for b in (1, 4, 6)},
    **{f"deploy_mobilenetv2_pedestrian_batch{b}.py": f"{MOBILENET}/deploy/MobileNetv2-PedestrianTrafficLight/ped_mobilenet-v2-224x224_batch_{b}.py"
       for b in (1, 4, 6)},
    "frnet_t4dataset_ot128.py": "projects/FRNet/configs/t4dataset/frnet_1xb8_t4dataset-ot128-seg.py",
    "deploy_frnet_dynamic.py": "projects/FRNet/configs/deploy/t4dataset/frnet_tensorrt_dynamic.py",
    "frnet_model.py": "projects/FRNet/configs/model/frnet.py",
    "tlr_classifier_car_dataset.py": "autoware_ml/configs/classification2d/dataset/t4dataset/tlr_classifier_car.py",
    "tlr_classifier_pedestrian_dataset.py": "autoware_ml/configs/classification2d/dataset/t4dataset/tlr_classifier_pedestrian.py",
    "cls2d_default_runtime.py": "autoware_ml/configs/classification2d/default_runtime.py",
    "cls2d_schedule_1x.py": "autoware_ml/configs/classification2d/schedules/schedule_1x.py",
    "det3d_default_runtime.py": "autoware_ml/configs/detection3d/default_runtime.py",
    "seg3d_t4dataset_j6gen2.py": "autoware_ml/configs/segmentation3d/dataset/t4dataset/j6gen2_base.py",
    "streampetr_resnet50_480x640.py": "projects/StreamPETR/configs/default/resnet50_480x640_baseline.py",
    "det3d_t4dataset_base.py": "autoware_ml/configs/detection3d/dataset/t4dataset/base.py",
}


@pytest.fixture(scope="module")
def awml_root() -> Path:
    root = Path(os.environ.get("AWML_ROOT", ""))
    if not os.environ.get("AWML_ROOT") or not (root / "autoware_ml").is_dir():
        pytest.skip("$AWML_ROOT does not name an AWML checkout (autoware_ml, projects/MobileNetv2, projects/FRNet)")
    return root


@pytest.mark.parametrize("ours", sorted(EQUIVALENTS))
def test_the_project_written_config_holds_the_values_of_awml_s_own_file(ours, awml_root):
    theirs = read_config(awml_root / EQUIVALENTS[ours]).values
    assert read_config(CONFIGS / ours).values == theirs


def test_every_project_written_equivalent_exists():
    assert sorted(p for p in EQUIVALENTS if not (CONFIGS / p).is_file()) == []
