"""The live cross-check of the streampetr specs against AWML's own StreamPETR (opt-in: ``pytest -m upstream``).

Needs mmdet3d, mmdet, mmengine and mmcv (no compiled op is used), and an AWML checkout named by ``$AWML_ROOT``
(tests/data/upstream/README.md says how; AWML's ``attention.py`` imports flash-attn at import time, which the deploy
path never calls: a module standing in for it is enough on a CPU). The recording is made again here and must equal
the committed one; this project's sections must agree with the live peer frame by frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.upstream

AWML_ROOT = Path(os.environ.get("AWML_ROOT", "")) if os.environ.get("AWML_ROOT") else None
if AWML_ROOT is None or not (AWML_ROOT / "projects" / "StreamPETR").is_dir():
    pytest.skip("$AWML_ROOT does not name an AWML checkout (projects/StreamPETR)", allow_module_level=True)
pytest.importorskip("mmdet3d.registry", reason="mmdet3d is not installed (AWML's StreamPETR is built on it)")
pytest.importorskip("flash_attn", reason="flash-attn (or a module standing in for it) is not importable: AWML's attention.py imports it")

from model_specs.mmconfig import _Reader, read_config  # noqa: E402
from model_specs.recording import TENSOR_RTOL, Recording  # noqa: E402
from model_specs.streampetr import upstream as streampetr  # noqa: E402

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs" / "awml"
CIRCUMSTANTIAL = {"created", "command", "environment", "versions", "comparison_when_recorded", "problems_when_recorded"}


@pytest.mark.parametrize("name", ["streampetr_tiny.py", "streampetr_resnet50_480x640.py"])
def test_mmengine_reads_what_the_restricted_reader_reads(name):
    assert read_config(CONFIGS / name).values == _Reader(CONFIGS / name).read()


@pytest.fixture(scope="module", params=[plan.name for plan in streampetr.PLANS])
def live(request):
    plan = next(p for p in streampetr.PLANS if p.name == request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(AWML_ROOT))
        recording, cfg = streampetr.record_plan(plan, CONFIGS)
    return plan, recording, cfg


def test_the_committed_recording_is_what_upstream_computes(live):
    """Hashes exactly; float arrays within TENSOR_RTOL of their scale (another CPU sums in another order)."""
    plan, recording, _ = live
    committed = Recording.load(DATA / "upstream", plan.name)
    assert recording.arrays.keys() == committed.arrays.keys()
    for key, value in committed.arrays.items():
        a, b = np.asarray(recording.arrays[key], np.float64), np.asarray(value, np.float64)
        assert a.shape == b.shape and np.abs(a - b).max(initial=0.0) <= TENSOR_RTOL * max(1.0, float(np.abs(b).max(initial=0.0))), key
    for key in committed.meta.keys() - CIRCUMSTANTIAL:
        assert recording.meta[key] == committed.meta[key], key


def test_this_project_agrees_with_the_live_peer(live):
    plan, recording, cfg = live
    assert cfg == plan.spec_config
    assert streampetr.compare(recording, cfg).problems() == []
    assert all(v == 0.0 for v in streampetr.decode_differences(recording, cfg).values())  # the same ops on the same head outputs
