"""Every tiny spec's sections make their tensors where their inputs are.

A tensor a section makes without naming a device (``arange``, ``eye``, ``zeros``, ``full``, ``linspace``) lands on
the CPU whatever its inputs are, and on CUDA the section then fails. StreamPETR's feature locations, memory alignment
and position codes and FRNet's cluster centres and frustum image did, found on the GPU machine (the CI box has none).
Here such a tensor is made on the meta device, and mixing it with the CPU inputs raises, so the default run catches
what only a GPU showed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_awml import spec_loader

TINY = sorted(name for name in spec_loader.available() if name.endswith("-tiny"))


def _sections():
    for name in TINY:
        for spec in spec_loader.load(name):
            for component in spec.components:
                yield pytest.param(spec, component, id=f"{spec.name}/{component.name}")


@pytest.mark.parametrize("spec, component", list(_sections()))
def test_a_section_makes_its_tensors_on_its_inputs_device(spec, component):
    model = spec.build_model(None, 0)
    with torch.no_grad():
        inputs = component.make_inputs(model, spec.make_samples(1, 0)[0])
    section = component.extract(model).eval()
    args = [torch.as_tensor(np.asarray(inputs[i])) for i in component.input_names]
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        with torch.no_grad():
            out = section(*args)
    finally:
        torch.set_default_device(before)
    outputs = out if isinstance(out, tuple) else (out,)
    assert outputs and all(o.device.type == "cpu" for o in outputs)
