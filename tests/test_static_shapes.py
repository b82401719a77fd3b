"""A component deployed at several static shapes (pytest_awml.static_shapes): one graph per shape, named apart;
a deploy config keeps the shape it describes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import toy
from pytest_awml import deploy_apply, deploy_config, static_shapes
from pytest_awml.pipeline import PipelineSpec
from pytest_awml.spec import validate

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"  # project-written, AWML 7a6ec07's structure and values


def _toy(shapes):
    encoder = dataclasses.replace(toy.SPEC.components[0], static_shapes=shapes)
    pipeline = dataclasses.replace(toy.SPEC.pipeline, stage_components={"enc": "enc"})
    return dataclasses.replace(toy.SPEC, components=(encoder, *toy.SPEC.components[1:]), pipeline=pipeline,
                               deploy_components={"end2end": "enc"})


def test_each_shape_is_a_static_component_named_apart_and_the_pipeline_runs_the_last():
    spec = validate(static_shapes.expand(_toy({"two": {"n": 2}, "eight": {"n": 8}})))
    names = [c.name for c in spec.components]
    assert names == ["enc.two", "enc.eight", "head"]
    assert spec.component("enc.two").inputs[0].shape == (2, 3) and spec.component("enc.eight").outputs[0].shape == (8, 2)
    assert spec.pipeline is not None and spec.pipeline.stage_components == {"enc": "enc.eight"}
    assert spec.deploy_components == {}  # the deploy config was applied before: it described one shape
    assert not any(c.static_shapes for c in spec.components)


def test_inputs_are_cycled_to_the_shape_as_a_static_batch_is_filled():
    spec = static_shapes.expand(_toy({"two": {"n": 2}, "eight": {"n": 8}}))
    sample = np.arange(12, dtype=np.float32).reshape(4, 3)
    model = toy.build_model(None, 0)
    assert spec.component("enc.two").make_inputs(model, sample)["x"].tolist() == sample[:2].tolist()
    eight = spec.component("enc.eight").make_inputs(model, sample)["x"]
    assert isinstance(eight, torch.Tensor) and eight.tolist() == sample[[0, 1, 2, 3, 0, 1, 2, 3]].tolist()
    assert static_shapes.fit(sample, {0: 6}).tolist() == sample[[0, 1, 2, 3, 0, 1]].tolist()


def test_a_spec_without_static_shapes_is_left_as_it_is():
    assert static_shapes.expand(toy.SPEC) is toy.SPEC


@pytest.mark.parametrize("batch", [1, 4, 6])
def test_awml_s_static_batch_deploy_configs_each_keep_their_shape(batch):
    from model_specs.mobilenetv2.spec import CAR_SPEC

    deploy = deploy_config.read(CONFIGS / f"deploy_mobilenetv2_car_batch{batch}.py")
    assert deploy.components[0].image_size == (224, 224) and deploy.opset == 11
    assert next((f, r) for f, r, _ in deploy.fields if f == "onnx_config.input_shape") == ("onnx_config.input_shape", "drives")
    spec = validate(static_shapes.expand(validate(deploy_apply.apply(CAR_SPEC, deploy))))
    assert [c.name for c in spec.components] == [f"classifier.batch{batch}"]
    component = spec.components[0]
    assert component.inputs[0].shape == (batch, 3, 224, 224) and component.outputs[0].shape == (batch, 11)
    assert component.onnx.opset == 11
    assert isinstance(spec.pipeline, PipelineSpec) and spec.pipeline.stage_components == {"model": f"classifier.batch{batch}"}
