"""What a failed parity or drift test leaves behind for a person to reproduce it without pytest.

``<artifacts>/failures/<test id>/`` gets the inputs and both sides' outputs as ``.npz`` and in
Polygraphy's JSON formats, the ONNX model, and ``reproduce.sh`` running ``polygraphy run``. The folder
is replaced as a whole; ``failures/`` or the test's folder being a symbolic link is refused (deleting
the old folder through it would delete a folder outside the artifacts), and every problem writing it is
an ArtifactError naming the folder, which the test adds to its own failure rather than replacing it.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
) -> Path:
    """Write the failure folder and return it.

    ``tolerances`` are those ``reproduce.sh`` replays with: ONNX Runtime on the exported graph
    against ``reference``, so they must allow for the runtime's own honest error.
    """
    folder = no_link(folder_for(root, test_id), root)
    try:
        _write(folder, test_id, inputs, reference, outputs, reference_name, test_name, tolerances, onnx_path)
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
            'cd "$(dirname "$0")"\n'
            "exec polygraphy run model.onnx --onnxrt --load-inputs inputs.json --load-outputs reference.json "
            f"--atol {atol} --rtol {rtol} --check-error-stat elemwise\n"  # output names are identifiers: no quoting
        )
        write_atomic(folder / "reproduce.sh", script.encode())
        (folder / "reproduce.sh").chmod(0o755)
