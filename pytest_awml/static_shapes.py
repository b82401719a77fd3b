"""A component deployed at several static shapes, one graph (ONNX file, engine) per shape.

AWML's traffic-light classifiers ship one MobileNetV2 as three engines, at static batch 1, 4 and 6
(``configs/deploy/..._batch_{1,4,6}.py``). A spec says so once: ``Component.static_shapes`` maps a shape's
name to the sizes of the component's dims it fixes (``{"batch4": {"batch": 4}}``). :func:`expand` turns such
a component into one component per shape, named ``<component>.<shape>`` (``classifier.batch4``: the test
ids tell the shapes apart), whose dims are those sizes, exported and tested as any static component is.

Inputs: a shape's inputs are the component's ``make_inputs`` cycled along each axis a shape fixes to its size
(:func:`fit`: indices ``i mod n``; a sample with fewer crops than the batch repeats them, one with more is cut),
as a deployment with a static batch fills a partial batch. A pipeline stage that names the component runs its
*last* shape (declare the deployed one last); the pipeline gets every shape's runner by its name. A deploy
config (``--awml-deploy-config``, applied before this) that fixes one of these dims keeps only the shapes it
agrees with (``deploy_apply``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from exporters.signature import Dim, DimLike, TensorSpec
from pytest_awml.errors import DataError, SpecError
from pytest_awml.pipeline import PipelineSpec
from pytest_awml.spec import Component, ModelSpec

SEPARATOR = "."


def variant_name(component: str, shape: str) -> str:
    """The test-id name of ``component`` at ``shape``."""
    return f"{component}{SEPARATOR}{shape}"


def problems(component: Component) -> list[str]:
    """What the declaration alone shows wrong: a dim no input has, a size outside the dim's range."""
    dims = {d.name: d for d in component.dynamic_dims}
    found = []
    for shape, sizes in component.static_shapes.items():
        if not sizes and dims:
            found.append(f"static_shapes[{shape!r}] fixes no dim (the component's dims: {', '.join(dims)})")
        for name, size in sizes.items():
            dim = dims.get(name)
            if dim is None:
                found.append(f"static_shapes[{shape!r}] fixes {name!r}, no dynamic dim of the inputs ({', '.join(dims) or 'none'})")
            elif not isinstance(size, int) or isinstance(size, bool) or not dim.min <= size <= dim.max:
                found.append(f"static_shapes[{shape!r}] gives {name!r} the size {size!r}, outside {dim.min}..{dim.max}")
    return found


def expand(spec: ModelSpec) -> ModelSpec:
    """``spec`` with every component that declares ``static_shapes`` replaced by one component per shape."""
    if not any(c.static_shapes for c in spec.components):
        return spec
    components: list[Component] = []
    last: dict[str, str] = {}
    for component in spec.components:
        found = problems(component)
        if found:
            raise SpecError(spec.name, f"components[{component.name!r}].static_shapes", "; ".join(found),
                            "name dims of the component's inputs, with sizes in their ranges")
        if not component.static_shapes:
            components.append(component)
            continue
        for shape, sizes in component.static_shapes.items():
            components.append(_fixed(component, variant_name(component.name, shape), sizes))
            last[component.name] = variant_name(component.name, shape)
    return dataclasses.replace(spec, components=tuple(components), pipeline=_repointed(spec.pipeline, last),
                               deploy_components={k: v for k, v in spec.deploy_components.items() if v not in last})


def _repointed(pipeline: PipelineSpec | None, last: Mapping[str, str]) -> PipelineSpec | None:
    if pipeline is None:
        return None
    stages = {stage: last.get(name, name) for stage, name in pipeline.stage_components.items()}
    return dataclasses.replace(pipeline, stage_components=stages)


def _fixed(component: Component, name: str, sizes: Mapping[str, int]) -> Component:
    def shape_of(tensor: TensorSpec) -> TensorSpec:
        shape: list[DimLike] = [sizes.get(d.name, d) if isinstance(d, Dim) else d for d in tensor.shape]
        return dataclasses.replace(tensor, shape=tuple(shape))

    inputs = tuple(shape_of(t) for t in component.inputs)
    axes = {t.name: {axis: sizes[d.name] for axis, d in enumerate(t.shape) if isinstance(d, Dim) and d.name in sizes} for t in component.inputs}
    return dataclasses.replace(component, name=name, inputs=inputs, outputs=tuple(shape_of(t) for t in component.outputs),
                               make_inputs=_fitting(component.make_inputs, axes), static_shapes={})


def _fitting(make_inputs: Callable[[Any, Any], Mapping[str, Any]], axes: Mapping[str, Mapping[int, int]]) -> Callable[[Any, Any], dict[str, Any]]:
    def make(model: Any, sample: Any) -> dict[str, Any]:
        return {key: fit(value, axes.get(key, {})) for key, value in make_inputs(model, sample).items()}

    return make


def fit(value: Any, sizes: Mapping[int, int]) -> Any:
    """``value`` (a tensor or array) cycled along each axis of ``sizes`` to that size (indices ``i mod n``)."""
    for axis, size in sizes.items():
        count = value.shape[axis]
        if count == size:
            continue
        if count == 0:
            raise DataError(f"a sample gives axis {axis} no item, and a static shape needs {size}: give every sample at least one")
        index = np.arange(size) % count
        value = value.index_select(axis, torch.from_numpy(index)) if isinstance(value, torch.Tensor) else np.take(value, index, axis=axis)
    return value
