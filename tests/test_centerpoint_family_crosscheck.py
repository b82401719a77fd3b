"""The CenterPoint family's live cross-check against AWML's own modules (opt-in: ``pytest -m mmdet3d``).

Needs mmdet3d with mmcv's compiled ops (tests/data/mmdet3d/README.md has the device call), mmpretrain, and an AWML
checkout in ``$AWML_ROOT`` (its ``projects/CenterPoint`` and ``projects/ConvNeXt_PC`` are imported, never copied
here). Each member is recorded again from its config and must be the committed recording, and this project
must agree with the live peer stage by stage.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.mmdet3d

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (pip install 'pytest-awml[mmdet3d]')")
pytest.importorskip("mmdet3d.registry", reason="mmdet3d is not installed (pip install 'pytest-awml[mmdet3d]')")
pytest.importorskip("mmpretrain", reason="mmpretrain is not installed (ConvNeXt_PC builds on it)")
if not os.environ.get("AWML_ROOT"):
    pytest.skip("AWML_ROOT is not set: point it at an AWML checkout (projects/CenterPoint, projects/ConvNeXt_PC)", allow_module_level=True)

from model_specs.centerpoint import family_peer  # noqa: E402
from model_specs.centerpoint.mmdet3d_peer import (  # noqa: E402
    Recording,
    compare,
    record_plan,
    recording_differences,
)

DATA = Path(__file__).parent / "data" / "mmdet3d"
PLANS = {plan.name: plan for plan in family_peer.plans()}


@pytest.fixture(scope="module", params=list(PLANS))
def live(request):
    family_peer.import_awml(Path(os.environ["AWML_ROOT"]))
    plan = PLANS[request.param]
    recording, cfg = record_plan(plan, family_peer.CONFIGS)
    return plan, recording, cfg



def test_the_committed_recording_is_what_awml_computes(live):
    plan, recording, _ = live
    committed = Recording.load(DATA, plan.name)
    assert recording_differences(recording, committed) == []


def test_this_project_agrees_with_the_live_peer(live):
    plan, recording, cfg = live
    assert cfg == plan.spec_config
    assert compare(recording, cfg).problems() == []
