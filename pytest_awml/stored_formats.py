"""The files kept across runs that are not exports: one inference's outputs, a seeded model's weights.

Each is a format like an export's (:class:`~pytest_awml.builders.base.ArtifactBuilder`): its key parts,
its writer, its verifier, stored by the same :class:`~pytest_awml.artifacts.ArtifactStore` under a
:class:`~pytest_awml.artifacts.Kind` the report (an artifact record's ``role``) and the summary read. They are not in the
builder registry: no backend runs them and no ``test_export`` builds them; the inference store is their one user.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml.artifacts import Artifact, ArtifactStore, Kind
from pytest_awml.checkpoints import read_state_dict
from pytest_awml.device import REFERENCE, Device, Target
from pytest_awml.digests import code_digest, package_digest
from pytest_awml.errors import AwmlError
from pytest_awml.machine import machine_identity
from pytest_awml.provenance import versions
from pytest_awml.spec import Component, ModelSpec, fingerprint

REFERENCE_FORMAT = "reference-outputs"  # kept across runs, one file per input
OUTPUTS_FORMAT = "backend-outputs"  # kept across runs, one file per input (--awml-rerun-backends: checked, replaced)
WEIGHTS_FORMAT = "seeded-weights"  # kept across runs
OUTPUT_PREFIX = "output/"  # array names in a stored inference's .npz

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class OutputsKey:
    """What decides a component's outputs on a target beside the input: the spec and every source file its
    model is built from (:func:`~pytest_awml.digests.code_digest`), the weights, the target, the file the backend
    runs, the code that runs it (this plugin's, and the backend's own), the libraries' versions and the machine.

    Replaying stored outputs is sound for the reason a build cache is: running the same file on the same input
    with the same code and libraries on the same machine computes them again; any change misses and runs."""

    spec: str
    model_code: str
    weights: str
    target: str
    plugin_code: str
    backend_code: str
    versions: str
    machine: str
    threads: str  # how many threads the runtimes split work over: a reduction split otherwise may round otherwise
    artifact: str | None  # sha256 of the file the backend runs; None: it runs the module

    @classmethod
    def of(cls, spec: ModelSpec, component: Component, target: Target, *, model: Any, weights_sha256: str,
           backend: Any, artifact_sha256: str | None, device: Device) -> OutputsKey:
        """The key of ``component``'s outputs on ``target``, run on ``device`` (the physical one): the parts the caller
        resolved (the model, the backend, the file it runs) and what this process and machine decide (library
        versions, the machine's identity, the thread counts)."""
        import torch

        classes = {type(m) for m in model.modules()} if isinstance(model, torch.nn.Module) else {type(model)}
        return cls(spec=fingerprint(spec, component), model_code=code_digest([spec.build_model, component.extract, *classes]),
                   weights=weights_sha256, target=target.id, plugin_code=package_digest(OutputsKey),
                   backend_code=code_digest([type(backend)]), versions=json.dumps(versions(), sort_keys=True),
                   machine=json.dumps(machine_identity(device), sort_keys=True),
                   threads=f"torch {torch.get_num_threads()}, cpus {os.cpu_count()}", artifact=artifact_sha256)

    def parts(self, digest: str) -> dict[str, str]:
        parts = {k: v for k, v in asdict(self).items() if v is not None}
        return {**parts, "inputs": digest}


def outputs_problem(path: Path, names: tuple[str, ...]) -> str | None:
    """What is wrong with stored outputs (unreadable, an array missing or cut), or None: a cache restored
    from elsewhere can carry a corrupt file under a manifest that matches it."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [name for name in names if OUTPUT_PREFIX + name not in stored.files]
            if missing:
                return f"no array {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
            for name in stored.files:
                stored[name]  # reading checks the zip's CRC: a cut or flipped file fails here
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def outputs_difference(stored: Mapping[str, np.ndarray], fresh: Mapping[str, np.ndarray]) -> str | None:
    """How stored outputs differ from the same inference run again, bit for bit, or None when they do not.

    Bit for bit: every backend here is deterministic run to run on one machine (the key holds the machine);
    a tolerance would let a small poisoning through."""
    if sorted(stored) != sorted(fresh):
        return f"outputs {sorted(stored)} stored, {sorted(fresh)} computed"
    for name in sorted(fresh):
        old, new = np.asarray(stored[name]), np.asarray(fresh[name])
        if old.dtype != new.dtype or old.shape != new.shape:
            return f"{name}: stored {old.dtype}{list(old.shape)}, computed {new.dtype}{list(new.shape)}"
        if not np.array_equal(np.ascontiguousarray(old).reshape(-1).view(np.uint8), np.ascontiguousarray(new).reshape(-1).view(np.uint8)):
            with np.errstate(invalid="ignore"):
                gap = np.abs(old.astype(np.float64) - new.astype(np.float64))
            return f"{name}: max abs difference {np.nanmax(gap) if np.isfinite(gap).any() else float('nan'):.3g}"
    return None


class StoredOutputs:
    """The ``reference-outputs`` and ``backend-outputs`` formats: one inference's outputs as a ``.npz``."""

    kind = Kind.OUTPUTS

    @staticmethod
    def format_of(target: Target) -> str:
        return REFERENCE_FORMAT if target == REFERENCE else OUTPUTS_FORMAT

    @staticmethod
    def write(path: Path, outputs: Outputs, target: Target, digest: str) -> dict[str, str]:
        arrays: dict[str, Any] = {OUTPUT_PREFIX + name: value for name, value in outputs.items()}  # no clash with savez's arguments
        np.savez(path, **arrays)
        return {"target": target.id, "input": digest}

    @staticmethod
    def read(path: Path, component: Component) -> Outputs:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[OUTPUT_PREFIX + name] for name in component.output_names}

    def get_or_build(self, store: ArtifactStore, spec: str, component: Component, target: Target, key: OutputsKey,
                     digest: str, compute: Callable[[], Outputs],
                     refuse: Callable[[Path], str | None] | None = None) -> tuple[Artifact, Outputs | None]:
        """The stored outputs of ``digest``'s input, and the outputs when this call computed them (None: read back).
        ``refuse``: a further reason not to trust a stored file (it differs from a rerun)."""
        computed: list[Outputs] = []

        def write(path: Path) -> dict[str, str]:
            computed.append(compute())
            return self.write(path, computed[0], target, digest)

        def verify(path: Path) -> str | None:
            return outputs_problem(path, component.output_names) or (refuse(path) if refuse is not None else None)

        artifact = store.get_or_build(spec=spec, component=component.name, format=self.format_of(target),
                                      filename=f"{component.name}.{target.id}.npz", key_parts=key.parts(digest),
                                      build=write, verify=verify, kind=self.kind)
        return artifact, (computed[0] if computed else None)


class SeededWeights:
    """The ``seeded-weights`` format: a seeded model's ``state_dict``. Keyed by the spec (its declared fields),
    every source file its model is built from, the seed, and the torch and NumPy versions (their random streams
    make the weights and the scenes a spec tunes them on)."""

    kind = Kind.WEIGHTS
    filename = "seeded.pt"

    @staticmethod
    def key_parts(spec: ModelSpec, seed: int) -> dict[str, Any]:
        import torch

        return {"spec": fingerprint(spec), "code": code_digest([spec.build_model]), "seed": seed,
                "torch": torch.__version__, "numpy": np.__version__}

    @staticmethod
    def verify(path: Path) -> str | None:
        try:
            read_state_dict(path)
        except AwmlError as exc:
            return str(exc)
        return None

    def get_or_build(self, store: ArtifactStore, spec: ModelSpec, seed: int) -> tuple[Artifact, Any]:
        """The stored weights, and the model when this call built them (None: stored before)."""
        import torch

        built: list[Any] = []

        def write(path: Path) -> dict[str, Any]:
            start = time.perf_counter()
            built.append(spec.build_model(None, seed))
            torch.save(built[0].state_dict(), path)
            return {"seed": seed, "seconds": round(time.perf_counter() - start, 3)}

        artifact = store.get_or_build(spec=spec.name, component="model", format=WEIGHTS_FORMAT, filename=self.filename,
                                      key_parts=self.key_parts(spec, seed), build=write, verify=self.verify, kind=self.kind)
        return artifact, (built[0] if built else None)
