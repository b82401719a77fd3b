"""A deploy config (:class:`~pytest_awml.deploy_config.DeployConfig`) applied to a spec: the components it
describes get the config's opset, constant folding, dynamic axes and TensorRT profiles, checked against the
graph the spec exports; the spec gains the facts (``run.facts``) with the config's file as their source.

Inputs follow the config: an axis in ``dynamic_axes`` becomes a :class:`Dim` named as the config names it, its
range from the profile (or the spec's, where the config has no profile); an axis not listed is static, and a
profile that gives it a range is refused. Outputs follow the graph: an output axis the spec declares dynamic
must be listed, under the input dim's name; one the config lists where the graph's output is static (an AWML
lidar config names a head's height like its input's, at half its size) stays static, noted in the facts.
Names, ranks and dtypes that differ from the spec's graph are refused by name: they describe another model.
mmdeploy's ``input_shape`` (the image size it exports at) must fit the first input's last two axes. A component
deployed at several static shapes (``Component.static_shapes``) keeps those the config agrees with: a config is
one of its graphs (AWML's ``..._batch_4.py`` is the batch-4 one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from exporters.signature import Dim, DimLike, TensorSpec
from pytest_awml.deploy_config import FLAG, DeployComponent, DeployConfig, Profile
from pytest_awml.errors import SpecError
from pytest_awml.facts import ConfigFact
from pytest_awml.spec import Component, ModelSpec


def apply(spec: ModelSpec, deploy: DeployConfig) -> ModelSpec:
    """``spec`` with every component the deploy config describes rebuilt from it."""
    if not spec.deploy_components:
        raise _fail(spec, "the spec maps no deploy config components (ModelSpec.deploy_components is empty)",
                    "drop --awml-deploy-config, or declare which of the config's components is which of the spec's")
    facts = [ConfigFact.of("deploy.opset", deploy.opset, deploy.path)] if deploy.opset is not None else []
    changed: dict[str, Component] = {}
    for described in deploy.components:
        name = spec.deploy_components.get(described.name)
        if name is None:
            raise _fail(spec, f"component {described.name!r} of {deploy.path} is none of the spec's "
                        f"(it maps {', '.join(sorted(spec.deploy_components))})",
                        "give the deploy config of this model, or map the component in ModelSpec.deploy_components")
        component = spec.component(name)
        changed[name], notes = _component(spec, component, described, deploy)
        tensors = changed[name].inputs + changed[name].outputs
        facts += [ConfigFact.of(f"{name}.dynamic_axes", {t.name: t.dynamic_axes for t in tensors}, deploy.path),
                  ConfigFact.of(f"{name}.profile", {t.name: [_corner(t, w) for w in ("min", "opt", "max")] for t in changed[name].inputs},
                                deploy.path),
                  *([ConfigFact.of(f"{name}.kept_static", notes, deploy.path)] if notes else [])]
    components = tuple(changed.get(c.name, c) for c in spec.components)
    return dataclasses.replace(spec, components=components, facts=(*spec.facts, *facts))


def _fail(spec: ModelSpec, problem: str, fix: str) -> SpecError:
    return SpecError(spec.name, FLAG, problem, fix)


def _corner(tensor: TensorSpec, which: str) -> list[int]:
    return [getattr(d, which) if isinstance(d, Dim) else d for d in tensor.shape]


def _component(spec: ModelSpec, component: Component, described: DeployComponent, deploy: DeployConfig) -> tuple[Component, list[str]]:
    where = f"{described.name} (the spec's {component.name})"
    for role, declared, listed in (("inputs", component.inputs, described.inputs), ("outputs", component.outputs, described.outputs)):
        if not listed:
            continue  # the config names none of them: nothing to check
        if [n for n, _ in listed] != [t.name for t in declared]:
            raise _fail(spec, f"{where}: the config's {role} are {[n for n, _ in listed]}, the graph's are {[t.name for t in declared]}",
                        "give the deploy config of this model (names and order must match the exported graph)")
        for (name, dtype), tensor in zip(listed, declared, strict=True):  # same names, so same count
            if dtype and dtype != tensor.dtype:
                raise _fail(spec, f"{where}: {role[:-1]} {name!r} is {dtype} in the config, {tensor.dtype} in the graph",
                            f"set its dtype to {tensor.dtype}")
    names = {t.name for t in component.inputs + component.outputs}
    for tensor_name in (*described.dynamic_axes, *described.profiles):
        if tensor_name not in names:
            raise _fail(spec, f"{where}: {tensor_name!r} is no input or output of the graph ({', '.join(sorted(names))})",
                        "name the graph's tensors in dynamic_axes and the profile")
    for tensor_name in described.profiles:
        if tensor_name not in component.input_names:
            raise _fail(spec, f"{where}: a profile for {tensor_name!r}, an output: TensorRT profiles are the inputs'",
                        "drop the output's profile")
    inputs = tuple(_input(spec, where, t, described.dynamic_axes.get(t.name, {}), described.profiles.get(t.name))
                   for t in component.inputs)
    if described.image_size is not None:
        _check_image_size(spec, where, inputs[0], described.image_size)
    fixed = _fixed(component, inputs)
    shapes = _static_shapes(spec, where, component, fixed)
    dims = {d.name: d for t in inputs for d in t.shape if isinstance(d, Dim)}
    notes: list[str] = []
    outputs = tuple(_output(spec, where, t, described.dynamic_axes.get(t.name, {}), dims, fixed, notes) for t in component.outputs)
    onnx = component.onnx
    if deploy.opset is not None:
        onnx = dataclasses.replace(onnx, opset=deploy.opset)
    if deploy.constant_folding is not None:
        onnx = dataclasses.replace(onnx, do_constant_folding=deploy.constant_folding)
    return dataclasses.replace(component, inputs=inputs, outputs=outputs, onnx=onnx, static_shapes=shapes), notes


def _check_image_size(spec: ModelSpec, where: str, tensor: TensorSpec, size: tuple[int, int]) -> None:
    """mmdeploy traces at ``input_shape``: the input's height and width must take that size."""
    axes = tensor.shape[-2:]
    fits = len(axes) == 2 and all(d.min <= n <= d.max if isinstance(d, Dim) else d == n for d, n in zip(axes, size, strict=True))
    if not fits:
        raise _fail(spec, f"{where}: onnx_config.input_shape is [{size[1]}, {size[0]}] (width, height), the input {tensor.name!r} "
                    f"takes height and width {list(_corner(tensor, 'min')[-2:])}..{list(_corner(tensor, 'max')[-2:])}",
                    "give the deploy config of this model's image size")


def _fixed(component: Component, inputs: tuple[TensorSpec, ...]) -> dict[str, int]:
    """The spec's input dims the config made static (not in its dynamic_axes, one size in its profile), by name."""
    return {old.name: new for before, after in zip(component.inputs, inputs, strict=True)
            for old, new in zip(before.shape, after.shape, strict=True) if isinstance(old, Dim) and not isinstance(new, Dim)}


def _static_shapes(spec: ModelSpec, where: str, component: Component, fixed: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """The component's static shapes the config agrees with, less the dims the config fixed itself."""
    kept = {shape: {k: v for k, v in sizes.items() if k not in fixed} for shape, sizes in component.static_shapes.items()
            if all(fixed.get(k, v) == v for k, v in sizes.items())}
    if component.static_shapes and not kept:
        raise _fail(spec, f"{where}: the config fixes {fixed}, none of the component's static shapes "
                    f"({', '.join(f'{k}: {dict(v)}' for k, v in component.static_shapes.items())})",
                    "give the deploy config of one of the shapes the spec deploys")
    return kept


def _input(spec: ModelSpec, where: str, tensor: TensorSpec, axes: Mapping[int, str], profile: Profile | None) -> TensorSpec:
    rank = len(tensor.shape)
    if profile is not None and len(profile.min) != rank:
        raise _fail(spec, f"{where}: the profile of {tensor.name!r} has rank {len(profile.min)}, the graph's input {rank}",
                    f"give {rank} sizes per shape")
    if any(axis >= rank for axis in axes):
        raise _fail(spec, f"{where}: dynamic_axes of {tensor.name!r} name axis {max(axes)}, the input has {rank}", "name axes 0..rank-1")
    shape: list[DimLike] = []
    for axis, declared in enumerate(tensor.shape):
        low, mid, high = ((profile.min[axis], profile.opt[axis], profile.max[axis]) if profile is not None else
                          (declared.min, declared.opt, declared.max) if isinstance(declared, Dim) else (declared,) * 3)
        if axis in axes:
            shape.append(Dim(axes[axis], low, mid, high))
        elif low != high:
            raise _fail(spec, f"{where}: the profile gives {tensor.name!r} axis {axis} the range {low}..{high}, "
                        "but dynamic_axes does not list that axis", f"list axis {axis} in dynamic_axes, or give it one size")
        else:
            shape.append(mid)
    return dataclasses.replace(tensor, shape=tuple(shape))


def _output(spec: ModelSpec, where: str, tensor: TensorSpec, axes: Mapping[int, str], dims: Mapping[str, Dim],
            fixed: Mapping[str, int], notes: list[str]) -> TensorSpec:
    shape: list[DimLike] = []
    for axis, declared in enumerate(tensor.shape):
        name = axes.get(axis)
        if isinstance(declared, Dim) and name is None and declared.name in fixed:  # follows an input dim the config made static
            shape.append(fixed[declared.name])
            continue
        if isinstance(declared, Dim):
            if name is None or name not in dims:
                raise _fail(spec, f"{where}: output {tensor.name!r} axis {axis} follows the input dim {declared.name!r}, but "
                            f"dynamic_axes {'does not list it' if name is None else f'names it {name!r}, no input dim'}",
                            "name it as the input dim it follows")
            shape.append(dims[name])
            continue
        if name is not None:
            notes.append(f"{tensor.name} axis {axis}: the config names it {name!r}, the graph gives it {declared} "
                         "for every profile size: kept static")
        shape.append(declared)
    return dataclasses.replace(tensor, shape=tuple(shape))
