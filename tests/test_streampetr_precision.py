"""StreamPETR's fp16/tf32 bounds (model_specs/streampetr/spec.py) against a real reduced-precision run: the tiny spec's
sections under PyTorch's CPU autocast at float16 (model_specs/streampetr/precision.py) pass both sequence gates, and an
error put just past any one output's bound fails that output alone, at that frame and gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_specs.streampetr.precision import rollouts, section_runner
from model_specs.streampetr.spec import TINY_SPEC
from pytest_awml.sequence import FRAME, SEQUENCE, first_failures, judge

FRAMES = 2  # the second frame is the first on a carried memory: both gates judge a state there
COMPONENTS = {c.name: c for c in TINY_SPEC.components}


@pytest.fixture(scope="module")
def fp16():
    model = TINY_SPEC.build_model(None, 0)
    frames = TINY_SPEC.sequence.make_frames(model, FRAMES, 0)
    return rollouts(TINY_SPEC, model, frames, "fp16")


def _bound(gate, component, output):
    return (COMPONENTS[component].tolerance("fp16", output) if gate == FRAME
            else TINY_SPEC.sequence.drift_tolerance("fp16", output))


def test_every_section_and_the_memory_have_reduced_precision_bounds():
    for precision in ("fp16", "tf32"):
        assert all(precision in c.tolerances for c in TINY_SPEC.components) and precision in TINY_SPEC.sequence.drift


def test_a_real_fp16_run_passes_both_gates(fp16):
    reference, forced, free = fp16
    verdicts = judge(TINY_SPEC.sequence, COMPONENTS, "fp16", reference, forced, free)
    assert not first_failures(verdicts)
    assert {(v.gate, v.frame) for v in verdicts} == {(g, k) for g in (FRAME, SEQUENCE) for k in range(FRAMES)}
    # it is reduced precision that was judged: the features moved by more than fp32's bound
    assert max(v.comparison.max_abs for v in verdicts if v.comparison.output == "img_feats") > 1e-3


@pytest.mark.parametrize("factor, fails", [(1.01, True), (0.99, False)])
def test_an_error_just_past_each_bound_fails_that_output(fp16, factor, fails):
    """On the last frame, one element of every judged output moved to ``factor`` x its own bound from the reference's
    value (in one row more than an output may set aside): past it, every output fails at that frame and gate (each bound
    bites at its value); within it, none."""
    reference, forced, free = fp16
    k = FRAMES - 1
    sides = {FRAME: list(forced), SEQUENCE: list(free)}
    judged = [(FRAME, c, o) for c in TINY_SPEC.sequence.order for o in COMPONENTS[c].output_names]
    judged += [(SEQUENCE, f.source, f.output) for f in TINY_SPEC.sequence.carries]
    for gate, component, output in judged:
        ref = reference[k][component][output]
        worst = np.unravel_index(np.argmax(np.abs(ref)), ref.shape)
        bound = _bound(gate, component, output)
        moved = sides[gate][k][component][output].copy()
        # rows a top-k's cut may let another query into are set aside up to their share: past it, one more row
        allowed = math.floor((bound.max_unmatched_rows or 0.0) * ref.shape[bound.row_axis]) if ref.ndim > bound.row_axis else 0
        places = [worst] if not allowed else [tuple(row if axis == bound.row_axis else index for axis, index in enumerate(worst))
                                              for row in range(allowed + 1)]
        for at in places:
            moved[at] = ref[at] + factor * (bound.atol + bound.rtol * abs(float(ref[at])))
        sides[gate][k] = {**sides[gate][k], component: {**sides[gate][k][component], output: moved}}
    verdicts = judge(TINY_SPEC.sequence, COMPONENTS, "fp16", reference, sides[FRAME], sides[SEQUENCE])
    failed = {(v.gate, v.frame, v.comparison.output) for v in verdicts if not v.comparison.passed}
    assert failed == ({(gate, k, output) for gate, _, output in judged} if fails else set())


def test_tf32_is_refused_on_the_cpu():
    model = TINY_SPEC.build_model(None, 0)
    run = section_runner(TINY_SPEC, model, "tf32", "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        run("extract_img_feat", {"img": np.zeros((1, 2, 3, *TINY_SPEC.params["model"].final_dim), np.float32)})
