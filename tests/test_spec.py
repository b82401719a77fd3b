"""Spec validation names the spec, the field and the fix; fingerprints follow what a spec declares."""

import dataclasses

import pytest

from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.errors import SpecError
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, TensorSpec, Tolerance, fingerprint, validate


def _with_component(**changes) -> ModelSpec:
    first = dataclasses.replace(TINY_SPEC.components[0], **changes)
    return dataclasses.replace(TINY_SPEC, components=(first, *TINY_SPEC.components[1:]))


def test_shipped_specs_are_valid():
    assert validate(TINY_SPEC) is TINY_SPEC


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"tolerances": {"fp32": {"hetmap": Tolerance(1e-4)}}}, "tolerances['fp32']['hetmap']", "names no output"),
        ({"tolerances": {"fp16": {"*": Tolerance(1e-2)}}}, "tolerances", "no 'fp32' entry"),
        ({"tolerances": {"fp32": {"*": Tolerance(-1.0)}}}, "tolerances['fp32']['*']", "atol must be a finite number"),
        ({"tolerances": {"int4": {"*": Tolerance(1.0)}, "fp32": {"*": Tolerance(1.0)}}}, "tolerances['int4']", "is not a precision"),
        ({"inputs": (TensorSpec("input_features", (Dim("num_voxels", 10, 5, 20), 32, 11)),)}, "inputs['input_features']", "min <= opt <= max"),
        ({"inputs": (TensorSpec("input_features", (0, 32, 11)),)}, "inputs['input_features']", "neither a positive int"),
        ({"outputs": (TensorSpec("pillar_features", (Dim("pillars", 1, 2, 3), 1, 32)),)}, "outputs['pillar_features']", "not an input dim"),
        ({"latency": LatencySettings(rounds=0)}, "latency", "rounds must be"),
        ({"name": "Bad Name"}, "components[0].name", "not a valid name"),
    ],
)
def test_bad_fields_are_named(changes, field, words):
    with pytest.raises(SpecError) as info:
        validate(_with_component(**changes))
    message = str(info.value)
    assert "spec 'centerpoint-tiny'" in message and field in message and words in message and "Fix:" in message


def test_duplicate_components_and_empty_specs():
    with pytest.raises(SpecError, match="used twice"):
        validate(dataclasses.replace(TINY_SPEC, components=(TINY_SPEC.components[0], TINY_SPEC.components[0])))
    with pytest.raises(SpecError, match="components: is empty"):
        validate(dataclasses.replace(TINY_SPEC, components=()))
    with pytest.raises(SpecError, match="expected a ModelSpec"):
        validate({"name": "x"})


def test_partial_tolerances_need_a_default():
    comp = TINY_SPEC.components[1]
    bad = dataclasses.replace(comp, tolerances={"fp32": {"heatmap": Tolerance(1e-4)}}, fed_by=None)  # alone in the spec
    with pytest.raises(SpecError, match="covers no tolerance for dim, height, reg, rot, vel"):
        validate(dataclasses.replace(TINY_SPEC, components=(bad,)))


def test_per_output_tolerance_overrides_the_default():
    comp = dataclasses.replace(TINY_SPEC.components[1], tolerances={"fp32": {"*": Tolerance(1e-4), "heatmap": Tolerance(1e-3, 0.0)}})
    assert comp.tolerance("fp32", "heatmap") == Tolerance(1e-3, 0.0)
    assert comp.tolerance("fp32", "reg") == Tolerance(1e-4)


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY_SPEC.name = "other"
    with pytest.raises(TypeError):
        TINY_SPEC.components[0].tolerances["fp32"] = {}


def test_fingerprint_is_stable_and_follows_declared_fields():
    comp = TINY_SPEC.components[0]
    assert fingerprint(TINY_SPEC, comp) == fingerprint(TINY_SPEC, comp)
    changed = dataclasses.replace(comp, onnx=dataclasses.replace(comp.onnx, opset=16))
    assert fingerprint(TINY_SPEC, changed) != fingerprint(TINY_SPEC, comp)
    assert fingerprint(TINY_SPEC, TINY_SPEC.components[1]) != fingerprint(TINY_SPEC, comp)


def test_tensor_shape_checks():
    spec = TensorSpec("x", (Dim("n", 2, 4, 8), 3))
    assert spec.shape_problem((5, 3)) is None
    assert "outside the declared range [2, 8]" in spec.shape_problem((9, 3))
    assert "axis 1 is 4" in spec.shape_problem((5, 4))
    assert "rank 1" in spec.shape_problem((5,))
    assert spec.at("max") == (8, 3) and spec.dynamic_axes == {0: "n"}
    assert isinstance(Component, type)
