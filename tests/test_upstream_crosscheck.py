"""The live cross-check against mmdet, mmpretrain and AWML's own modules (opt-in: ``pytest -m upstream``).

Needs mmdet, mmpretrain, mmengine, mmcv and OpenCV installed (no compiled mmcv op is used) and an AWML
checkout named by ``$AWML_ROOT`` (tests/data/upstream/README.md says how). Each recording is made again
here, from the AWML-structured config files through ``--awml-config``'s reader (mmengine's path), and
must equal the committed one; this project's models must agree with the live peers stage by stage.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.upstream

AWML_ROOT = Path(os.environ.get("AWML_ROOT", "")) if os.environ.get("AWML_ROOT") else None
if AWML_ROOT is None or not (AWML_ROOT / "projects" / "YOLOX_opt_elan").is_dir() or not (AWML_ROOT / "autoware_ml").is_dir():
    pytest.skip("$AWML_ROOT does not name an AWML checkout (projects/YOLOX_opt_elan, autoware_ml)", allow_module_level=True)
pytest.importorskip("mmdet.registry", reason="mmdet is not installed")
pytest.importorskip("mmpretrain.models", reason="mmpretrain is not installed")
pytest.importorskip("cv2", reason="OpenCV is not installed (AWML's transform reads and writes images with it)")

from model_specs.calibration import upstream as calibration  # noqa: E402
from model_specs.frnet import upstream as frnet  # noqa: E402
from model_specs.mmconfig import _Reader, read_config  # noqa: E402
from model_specs.mobilenetv2 import upstream as mobilenetv2  # noqa: E402
from model_specs.recording import TENSOR_RTOL, Recording  # noqa: E402
from model_specs.yolox import upstream as yolox  # noqa: E402

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs" / "awml"
PLANS = {plan.name: (module, plan) for module in (yolox, calibration, mobilenetv2, frnet) for plan in module.PLANS}
# meta that says when and where, not what was computed
CIRCUMSTANTIAL = {"created", "command", "environment", "versions", "comparison_when_recorded", "problems_when_recorded"}


@pytest.fixture(scope="module")
def awml_importable():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(AWML_ROOT))
        yield


@pytest.mark.parametrize("name", sorted({plan.config for _, plan in PLANS.values()}))
def test_mmengine_reads_what_the_restricted_reader_reads(name):
    assert read_config(CONFIGS / name).values == _Reader(CONFIGS / name).read()


@pytest.fixture(scope="module", params=sorted(PLANS))
def live(request, awml_importable):
    module, plan = PLANS[request.param]
    if module is frnet:
        pytest.importorskip("mmdet3d.registry", reason="mmdet3d is not installed (AWML's FRNet is built on it)")
    recording, cfg = module.record_plan(plan, CONFIGS)
    return module, plan, recording, cfg


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.abs(a - b).max(initial=0.0) <= TENSOR_RTOL * max(1.0, float(np.abs(b).max(initial=0.0))))


def test_the_committed_recording_is_what_upstream_computes(live):
    """Inputs, indices and hashes exactly; float arrays within TENSOR_RTOL (another CPU sums in another order)."""
    _, plan, recording, _ = live
    committed = Recording.load(DATA / "upstream", plan.name)
    assert recording.arrays.keys() == committed.arrays.keys()
    for key, value in committed.arrays.items():
        exact = not np.issubdtype(value.dtype, np.floating) or key.endswith("input")
        assert (np.array_equal(recording.arrays[key], value) if exact else _close(recording.arrays[key], value)), key
    for key in committed.meta.keys() - CIRCUMSTANTIAL - {"state_sha256", "objectness_shift"}:
        assert recording.meta[key] == committed.meta[key], key


def test_this_project_agrees_with_the_live_peer(live):
    module, plan, recording, cfg = live
    assert cfg == plan.spec_config
    assert module.compare(recording, cfg).problems() == []
