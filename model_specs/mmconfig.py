"""What every spec's training-config reader (``--awml-config``) builds on: :class:`Sections`.

The files themselves are read by :mod:`pytest_awml.config_reader` (mmengine if installed, else its bounded,
non-executing reader), which the deploy config (``--awml-deploy-config``, a framework concern) shares; its
names are re-exported here for the specs' readers.

:class:`Sections` checks every component type by name (a model a spec does not implement is refused, never
approximated) and reads norms with the defaults the upstream class would apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pytest_awml.config_reader import (  # noqa: F401 (re-exported for the specs' readers)
    MAX_CONFIG_BYTES,
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_ITEMS,
    TrainingConfig,
    _Reader,
    read_config,
)
from pytest_awml.errors import SpecError

NORMS = ("BN", "BN1d", "BN2d", "SyncBN", "NaiveSyncBN2d")  # BatchNorm at inference, whatever trained it
TORCH_BATCH_NORM = (1e-5, 0.1)  # (eps, momentum) that mmcv's BN layers keep unless told


class Sections:
    """One training config's model sections, each checked against the component types a spec implements.

    ``supported`` maps a section name to the registry names (scope prefix dropped) the spec computes;
    anything else is refused by name, never approximated.
    """

    def __init__(self, spec: str, supported: Mapping[str, tuple[str, ...]], path: Path, values: Mapping[str, Any]) -> None:
        self.spec, self.supported, self.path, self.values = spec, supported, path, values
        model = values.get("model")
        if not isinstance(model, dict):
            raise self.fail("no model = dict(...) section")
        self.model = model

    def fail(self, problem: str, fix: str = "") -> SpecError:
        return SpecError(self.spec, f"--awml-config {self.path}", problem, fix)

    def typed(self, section: str, node: Any) -> dict:
        kind = node.get("type") if isinstance(node, dict) else None
        kind = kind.split(".")[-1] if isinstance(kind, str) else kind  # "mmdet.SeparateHead" → its class name
        if kind not in self.supported[section]:
            raise self.fail(f"{section}: not supported: {kind}", f"this spec implements {section} as {' or '.join(self.supported[section])}")
        return node

    def unsupported(self, section: str, what: str) -> SpecError:
        return self.fail(f"{section}: not supported: {what}")

    def norm(self, section: str, cfg: Mapping[str, Any] | None, default: tuple[float, float] = TORCH_BATCH_NORM) -> tuple[float, float]:
        """``(eps, momentum)`` of a BatchNorm config; keys it leaves out take ``default`` (the reading class's)."""
        cfg = cfg or {}
        if cfg.get("type", "BN") not in NORMS:
            raise self.unsupported(section, f"norm {cfg.get('type')}")
        return float(cfg.get("eps", default[0])), float(cfg.get("momentum", default[1]))

    def required(self, section: str, node: Mapping[str, Any], key: str) -> Any:
        """A key the upstream class has no default for."""
        if key not in node:
            raise self.fail(f"{section}.{key} is not set (the upstream class has no default for it)", f"set {section}.{key}")
        return node[key]
