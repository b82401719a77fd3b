"""A spec's model and samples, loaded once per session, and the component inputs made from them.

Model knowledge stays in the spec: ``build_model``, ``make_samples``/``load_data`` and each
component's ``make_inputs`` are the spec's functions; this module calls them with the run's
options and checks what they return against what the spec declares.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_awml.builders.base import Calibrated
from pytest_awml.checkpoints import load_into
from pytest_awml.errors import DataError
from pytest_awml.quantization import calibration_seed
from pytest_awml.shapes import feed_problem
from pytest_awml.spec import Component, ModelSpec

if TYPE_CHECKING:
    from pytest_awml.options import AwmlOptions


class DataWarning(UserWarning):
    """A spec's data reader changed what it was given (points cut to the model's limit…): it warns
    with this, and the run keeps the message with the samples (the report's ``data`` records)."""


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    model: Any
    weights_sha256: str
    samples: tuple[Any, ...]
    notes: tuple[str, ...] = ()  # what the data reader warned about (DataWarning)


def state_dict_sha256(model) -> str:
    """Hash of every parameter and buffer: names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{array.dtype}:{tuple(array.shape)}".encode())
        digest.update(array.numpy().tobytes())
    return digest.hexdigest()


def load_model(spec: ModelSpec, options: AwmlOptions, seeded: Callable[[], tuple[Path, Any]] | None = None):
    """The spec's model in eval mode: seeded, or with ``--awml-checkpoint`` loaded strictly into it.

    ``seeded`` (the session's artifact store) gives the file of the seeded model's weights, and the model when
    it built that file now with ``build_model(None, seed)``: seeded weights can cost a forward pass to
    calibrate (a detector's score bias placed on a scene), which a later run then skips, building only the
    architecture (``build_model(file, seed)``, as for a checkpoint) and loading the stored weights into it."""
    if options.checkpoint is None and seeded is not None and not spec.default_weights:
        weights, built = seeded()
        if built is not None:
            return built.eval()
        model = spec.build_model(weights, options.seed)
        load_into(model, weights, hints=spec.checkpoint_hints)
        return model.eval()
    model = spec.build_model(options.checkpoint, options.seed)
    if options.checkpoint is not None:
        load_into(model, options.checkpoint, trust=options.trust_checkpoint, hints=spec.checkpoint_hints)
    return model.eval()


def load(spec: ModelSpec, options: AwmlOptions, seeded: Callable[[], tuple[Path, Any]] | None = None) -> LoadedModel:
    """The model and the run's samples: seeded synthetic ones, or real files with ``--awml-data``."""
    import torch

    torch.manual_seed(options.seed)
    model = load_model(spec, options, seeded)
    notes: tuple[str, ...] = ()
    if options.data is not None:
        if spec.load_data is None:
            raise DataError(f"spec {spec.name!r} cannot read data files (it declares no load_data); drop --awml-data")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            samples = tuple(spec.load_data(options.data, dict(options.data_options)))
        for warning in caught:  # said again outside, where pytest's own warning capture sees them
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        notes = tuple(str(w.message) for w in caught if issubclass(w.category, DataWarning))
    else:
        samples = tuple(spec.make_samples(options.samples, options.seed))
        if len(samples) != options.samples:
            raise DataError(f"spec {spec.name!r}: make_samples returned {len(samples)} samples, {options.samples} were asked for")
    return LoadedModel(spec, model, state_dict_sha256(model), samples, notes)


def to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    raise DataError(f"an input is a {type(value).__name__}; make_inputs must return torch tensors or numpy arrays")


def component_inputs(loaded: LoadedModel, component: Component,
                     upstream: Sequence[Mapping[str, np.ndarray]] | None = None) -> list[dict[str, np.ndarray]]:
    """The component's named inputs for every sample, checked against its TensorSpecs: from ``make_inputs``, or
    with ``upstream`` (the outputs of the component it is fed by, one per sample) from ``fed_by.make``."""
    import torch

    made_by = "make_inputs" if upstream is None else "fed_by.make"
    fed_by = component.fed_by
    if upstream is not None and fed_by is None:
        raise DataError(f"{component.name} is fed by no component (its fed_by is None): it takes no upstream outputs")
    result = []
    with torch.inference_mode():
        for index, sample in enumerate(loaded.samples):
            made = (component.make_inputs(loaded.model, sample) if upstream is None or fed_by is None
                    else fed_by.make(loaded.model, sample, upstream[index]))
            named = {name: to_numpy(v) for name, v in made.items()}
            problem = feed_problem(component.inputs, named)
            if problem:
                raise DataError(f"{loaded.spec.name}/{component.name}, sample {index} from {made_by}: {problem}")
            result.append(named)
    return result


def calibrated(loaded: LoadedModel, spec: ModelSpec, component: Component, options: AwmlOptions) -> Calibrated:
    """The component's int8 settings and its inputs for their calibration samples (``quantization``): seeded samples
    of the seed after the run's (not the samples scored), or the ``--awml-data`` files; made standalone
    (``make_inputs``: a component fed by another runs that one in PyTorch)."""
    settings = options.int8(component)
    if options.data is not None:
        samples, source = loaded.samples[: settings.samples], f"the --awml-data samples ({options.data})"
    else:
        seed = calibration_seed(options.seed)
        samples, source = tuple(spec.make_samples(settings.samples, seed)), f"seeded samples, seed {seed}"
    made = component_inputs(replace(loaded, samples=samples), component)
    return Calibrated(settings, made, f"{len(made)} {source}")

