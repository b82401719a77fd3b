"""The golden model's layers, kept beside its golden outputs, so that a drift failure names where today's model
starts to differ: the golden side has no model to hook any more.

``--awml-update-golden`` keeps, for the first golden input, a probe of every module call's tensors in and out
(:data:`PROBE` elements at evenly spaced positions of each, the same positions every time), in
``<golden>/<spec>/<component>.layers.npz``; a drift failure probes today's calls on that input the same way and
judges them pair by pair (:func:`pytest_awml.divergence.compare_calls`). A probe can miss a change confined to
elements it does not hold: then no module is named, which the failure says.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml import intermediates
from pytest_awml.divergence import Localization, compare_calls
from pytest_awml.errors import ArtifactError
from pytest_awml.intermediates import ModuleCall, module_calls
from pytest_awml.layer_rule import LayerRule
from pytest_awml.localize import Skipped
from pytest_awml.paths import no_link, write_atomic

PROBE = 4096  # elements kept of each tensor: a full-size backbone's calls fit in a few MB
SUFFIX = ".layers.npz"


def path_of(root: Path, spec: str, component: str) -> Path:
    """Where a component's golden layers are kept (beside its golden pair; a symbolic link is refused)."""
    return no_link(Path(root) / spec / f"{component}{SUFFIX}", Path(root))


def probe(values: np.ndarray) -> np.ndarray:
    """At most :data:`PROBE` elements of ``values`` at evenly spaced positions of its flattened form."""
    return intermediates.probe(values, PROBE)


def probed(calls: Sequence[ModuleCall]) -> list[ModuleCall]:
    return [ModuleCall(c.module, tuple(probe(t) for t in c.inputs), tuple(probe(t) for t in c.outputs)) for c in calls]


def write(path: Path, calls: Sequence[ModuleCall]) -> None:
    arrays: dict[str, Any] = {"modules": np.array([c.module for c in calls], dtype=str)}
    for i, call in enumerate(probed(calls)):
        arrays.update({f"{i}/in/{j}": t for j, t in enumerate(call.inputs)})
        arrays.update({f"{i}/out/{j}": t for j, t in enumerate(call.outputs)})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue(), what=f"the golden layers {path.name}")


def read(path: Path) -> list[ModuleCall] | None:
    """The kept probes, or None when there are none (golden outputs written before layers were kept)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            modules = [str(m) for m in archive["modules"]]
            keys = set(archive.files)

            def side(i: int, which: str) -> tuple[np.ndarray, ...]:
                count = sum(1 for k in keys if k.startswith(f"{i}/{which}/"))
                return tuple(archive[f"{i}/{which}/{j}"] for j in range(count))

            return [ModuleCall(m, side(i, "in"), side(i, "out")) for i, m in enumerate(modules)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"golden layers {path} are unreadable ({type(exc).__name__}: {exc}): "
                            "rewrite them with --awml-update-golden") from None


def first_divergence(root: Path, spec, component, module, inputs, tolerances, reference) -> Localization | Skipped:
    """Today's ``module`` on the first golden input against the kept golden layers (a drift failure's localization)."""
    path = path_of(root, spec.name, component.name)
    try:
        golden = read(path)
    except ArtifactError as exc:  # a diagnosis after the verdict: said beside it, never raised instead
        return Skipped(str(exc))
    if golden is None:
        return Skipped(f"no golden layers in {path}: golden outputs written before layers were kept; rewrite them with "
                       "--awml-update-golden")
    today = module_calls(module, [inputs[0][name] for name in component.input_names], probed=PROBE)
    return compare_calls(golden, today, LayerRule.of(tolerances, reference[0]))
