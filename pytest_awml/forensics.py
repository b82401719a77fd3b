"""What a failed parity or drift test leaves behind for a person to reproduce it without pytest.

``<artifacts>/failures/<test id>/`` gets the inputs and both sides' outputs as ``.npz`` and in
Polygraphy's JSON formats, the ONNX model, and ``reproduce.sh`` running ``polygraphy run``; when the failure was
localized (:mod:`pytest_awml.localize`), the per-layer table (``layers.json``, ``layers.md``) and what
``reproduce.sh --layer [TENSOR]`` replays one graph tensor with (``layer_model.onnx``, ``layer_inputs.json``,
``layer_reference.json``: the replayed input and the reference's values of the diverging module's tensors). The folder
is replaced as a whole; ``failures/`` or the test's folder being a symbolic link is refused (deleting
the old folder through it would delete a folder outside the artifacts), and every problem writing it is
an ArtifactError naming the folder, which the test adds to its own failure rather than replacing it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml.divergence import Localization
from pytest_awml.limits import Tolerance
from pytest_awml.paths import no_link, write_atomic, write_error

FAILURES = "failures"


def folder_for(root: Path, test_id: str) -> Path:
    name = test_id.split("::")[-1]
    return Path(root) / FAILURES / re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _npz(samples: Sequence[Mapping[str, np.ndarray]]) -> bytes:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {f"{i}/{name}": v for i, s in enumerate(samples) for name, v in s.items()}
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_failure(
    root: Path,
    test_id: str,
    *,
    inputs: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[Mapping[str, np.ndarray]],
    outputs: Sequence[Mapping[str, np.ndarray]],
    reference_name: str,
    test_name: str,
    tolerances: Mapping[str, Tolerance],
    onnx_path: Path | None,
    localization: Localization | None = None,
) -> Path:
    """Write the failure folder and return it.

    ``tolerances`` are those ``reproduce.sh`` replays with: ONNX Runtime on the exported graph
    against ``reference``, so they must allow for the runtime's own honest error.
    """
    folder = no_link(folder_for(root, test_id), root)
    try:
        _write(folder, test_id, inputs, reference, outputs, reference_name, test_name, tolerances, onnx_path)
        if localization is not None:
            _write_layers(folder, inputs, localization)
    except OSError as exc:  # a full disk: what was written of the folder stays, the test says the rest is missing
        raise write_error(folder, f"the failure folder of {test_id}", exc) from exc
    return folder


def _write(folder: Path, test_id: str, inputs, reference, outputs, reference_name: str, test_name: str,
           tolerances: Mapping[str, Tolerance], onnx_path: Path | None) -> None:
    if folder.exists():
        shutil.rmtree(folder)  # a real folder (no_link checked it): rmtree deletes links inside it, never what they point to
    folder.mkdir(parents=True)
    write_atomic(folder / "inputs.npz", _npz(inputs))
    write_atomic(folder / "reference.npz", _npz(reference))
    write_atomic(folder / "outputs.npz", _npz(outputs))
    try:
        from polygraphy.comparator import RunResults
        from polygraphy.json import save_json
        from polygraphy.logger import G_LOGGER
    except ImportError as exc:
        write_atomic(folder / "README.txt", f"Polygraphy is not importable ({exc}); install pytest-awml[test] for its JSON files.\n".encode())
        return
    with G_LOGGER.verbosity(G_LOGGER.ERROR):  # its "Saving inference results" lines would clutter the failure
        save_json([dict(s) for s in inputs], str(folder / "inputs.json"))
        for name, samples in (("reference", reference), ("outputs", outputs)):
            results = RunResults()
            results.add([dict(s) for s in samples], runner_name=reference_name if name == "reference" else test_name)
            results.save(str(folder / f"{name}.json"))
    if onnx_path is not None and Path(onnx_path).exists():
        shutil.copyfile(onnx_path, folder / "model.onnx")
        atol = " ".join(f"{name}:{tol.atol:g}" for name, tol in tolerances.items())
        rtol = " ".join(f"{name}:{tol.rtol:g}" for name, tol in tolerances.items())
        script = (
            "#!/usr/bin/env bash\n"
            f"# Replays {test_id} without pytest: ONNX Runtime on model.onnx against the {reference_name} outputs.\n"
            "# Polygraphy passes an element when EITHER |diff| <= atol OR |diff|/|ref| <= rtol (pytest-awml\n"
            "# requires |diff| <= atol + rtol*|ref|), so it can only be more lenient than the failed test.\n"
            "# reproduce.sh --layer [TENSOR]: one graph tensor of the localized graph instead (layer.sh, when written).\n"
            'cd "$(dirname "$0")"\n'
            'if [ "${1:-}" = "--layer" ]; then shift; exec ./layer.sh "$@"; fi\n'
            "exec polygraphy run model.onnx --onnxrt --load-inputs inputs.json --load-outputs reference.json "
            f"--atol {atol} --rtol {rtol} --check-error-stat elemwise\n"  # output names are identifiers: no quoting
        )
        write_atomic(folder / "reproduce.sh", script.encode())
        (folder / "reproduce.sh").chmod(0o755)


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def layers_markdown(localization: Localization) -> str:
    """The per-layer table a person reads: every module call in the order they ended, the first divergence marked."""
    first = localization.first
    lines = [f"# Layers (input {localization.sample}, backend side: the {localization.graph} graph in ONNX Runtime)", "",
             localization.line(), "",
             f"Each graph tensor is judged at |diff| <= {localization.rule.atol_ratio:.3g} x its range + "
             f"{localization.rule.rtol:g} x |ref| (the component's tolerance scaled to the tensor's range).", "",
             "| # | module | within | tolerance used | max abs | range | input max abs | inputs within | graph tensors | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in localization.rows:
        mark = " **<- first divergence**" if first is not None and row.module == first.module and row.onnx_outputs and \
            row.onnx_outputs[-1] == first.onnx_tensor else ""
        note = row.note or (f"{row.folded} folded into its nodes" if row.folded else "")
        if row.nonfinite:
            note = f"{row.nonfinite} non-finite; {note}".strip("; ")
        lines.append(f"| {row.order} | `{row.module or '(root)'}`{mark} | {'' if row.within is None else row.within} | "
                     f"{_figure(row.tolerance_used)} | "
                     f"{_figure(row.max_abs)} | {_figure(row.ref_max_abs)} | {_figure(row.input_max_abs)} | "
                     f"{'' if row.inputs_within is None else row.inputs_within} | {', '.join(row.onnx_outputs)} | {note} |")
    return "\n".join(lines) + "\n"


def _write_layers(folder: Path, inputs: Sequence[Mapping[str, np.ndarray]], localization: Localization) -> None:
    rows = [{k: _finite(v) for k, v in dataclasses.asdict(row).items()} for row in localization.rows]
    table = {"graph": localization.graph, "sample": localization.sample, "seconds": localization.seconds,
             "rule": dataclasses.asdict(localization.rule),
             "first_divergence": dataclasses.asdict(localization.first) if localization.first else None, "layers": rows}
    write_atomic(folder / "layers.json", json.dumps(table, indent=1, default=_no_nan).encode())
    write_atomic(folder / "layers.md", layers_markdown(localization).encode())
    first = localization.first
    if first is None or localization.graph_path is None or not Path(localization.graph_path).exists():
        return
    try:
        from polygraphy.comparator import RunResults
        from polygraphy.json import save_json
        from polygraphy.logger import G_LOGGER
    except ImportError:
        return  # the README beside says so
    shutil.copyfile(localization.graph_path, folder / "layer_model.onnx")
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        save_json([dict(inputs[localization.sample])], str(folder / "layer_inputs.json"))
        results = RunResults()
        results.add([dict(localization.replay.items())], runner_name="reference")
        results.save(str(folder / "layer_reference.json"))
    rule = localization.rule
    atol = " ".join(f"{name}:{rule.atol_ratio * float(np.nanmax(np.abs(v))) if v.size else 0.0:g}"
                    for name, v in localization.replay.items())
    script = (
        "#!/usr/bin/env bash\n"
        f"# Replays one layer of {localization.graph}: ONNX Runtime on layer_model.onnx up to one graph tensor, against the\n"
        "# reference module's value of it (layer_reference.json holds the diverging module's tensors, out and in).\n"
        f"# Usage: layer.sh [TENSOR]   (default: {first.onnx_tensor}, the first divergence)\n"
        'cd "$(dirname "$0")"\n'
        f'tensor="${{1:-{first.onnx_tensor}}}"\n'
        'exec polygraphy run layer_model.onnx --onnxrt --onnx-outputs "$tensor" --load-inputs layer_inputs.json '
        f"--load-outputs layer_reference.json --atol {atol} --rtol {rule.rtol:g} --check-error-stat elemwise\n"
    )
    write_atomic(folder / "layer.sh", script.encode())
    (folder / "layer.sh").chmod(0o755)


def _finite(value):
    """JSON has no Inf/NaN: such a figure is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _no_nan(value):
    """numpy scalars and tuples as JSON; never reached for floats (their NaN/Inf become null before)."""
    if isinstance(value, np.generic):
        item = value.item()
        return None if isinstance(item, float) and not math.isfinite(item) else item
    raise TypeError(f"{type(value).__name__} is not JSON")
