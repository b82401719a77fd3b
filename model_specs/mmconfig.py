"""What every spec's training-config reader (``--awml-config``) builds on: :class:`Sections`.

The files themselves are read by :mod:`pytest_awml.config_reader` (mmengine if installed, else its bounded,
non-executing reader), which the deploy config (``--awml-deploy-config``, a framework concern) shares; its
names are re-exported here for the specs' readers.

:class:`Sections` checks every component type by name (a model a spec does not implement is refused, never
approximated), every key of a section against the spec's table of the keys it reads or knows to be inert
(:meth:`Sections.known`), and reads norms with the defaults the upstream class would apply. A type is named with
or without its registry scope (``mmdet.Resize`` is ``Resize``): :func:`type_name` is the one reading of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_awml.config_reader import (  # noqa: F401 (re-exported for the specs' readers)
    MAX_CONFIG_BYTES,
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_ITEMS,
    SCOPE_KEY,
    TrainingConfig,
    _Reader,
    read_config,
)
from pytest_awml.errors import SpecError

NORMS = ("BN", "BN1d", "BN2d", "SyncBN", "NaiveSyncBN2d")  # BatchNorm at inference, whatever trained it
TORCH_BATCH_NORM = (1e-5, 0.1)  # (eps, momentum) that mmcv's BN layers keep unless told


# Keys that decide nothing a deployed model computes, with the reason a spec may pass them over: the
# weights a run uses come from the checkpoint (or are seeded), and training settings never reach inference.
INERT = {
    "init_cfg": "weight initialisation: the checkpoint's (or the seeded) weights replace it",
    "pretrained": "weights to start training from: the checkpoint's (or the seeded) weights replace them",
    "frozen_stages": "parameters frozen in training",
    "train_cfg": "training targets and assignment",
    "requires_grad": "whether training updates the layer",
}
NORM_KEYS = ("type", "eps", "momentum")
CONV2D = "Conv2d"

Fields = Mapping[str, tuple[tuple[str, ...], Mapping[str, str]]]
"""A spec's table: per component type or section, the keys it reads (beside ``type``) and those inert at inference
with the reason."""


def type_name(node: Any) -> str | None:
    """A config node's registry type without its scope (``"mmdet.Resize"`` → ``"Resize"``); None for a node that
    names none (not a dict, no ``type``, or a ``type`` that is not a name)."""
    kind = node.get("type") if isinstance(node, dict) else None
    return kind.rsplit(".", 1)[-1] if isinstance(kind, str) else None


class Sections:
    """One training config's model sections, each checked against the component types a spec implements.

    ``supported`` maps a section name to the registry names (scope prefix dropped) the spec computes;
    anything else is refused by name, never approximated. :meth:`fields` holds a section to the keys the
    spec reads or knows to be inert at inference, so that no key the upstream class would act on is dropped
    without a word; :meth:`known` does so from the spec's table (``table``).
    """

    def __init__(self, spec: str, supported: Mapping[str, tuple[str, ...]], path: Path, values: Mapping[str, Any],
                 table: Fields) -> None:
        self.spec, self.supported, self.path, self.values, self.table = spec, supported, path, values, table
        model = values.get("model")
        if not isinstance(model, dict):
            raise self.fail("no model = dict(...) section")
        self.model = model

    def fail(self, problem: str, fix: str = "") -> SpecError:
        return SpecError(self.spec, f"--awml-config {self.path}", problem, fix)

    def typed(self, section: str, node: Any) -> dict:
        kind = type_name(node)  # "mmdet.SeparateHead" → its class name
        if kind not in self.supported[section]:
            raise self.fail(f"{section}: not supported: {kind}", f"this spec implements {section} as {' or '.join(self.supported[section])}")
        return node

    def known(self, section: str, node: Mapping[str, Any] | None) -> None:
        """``node``'s keys against the table's row of its type, or (an untyped node, or a type the table keys by
        its section) the section's own row; a node with neither is refused by name."""
        kind = type_name(node)
        row = kind if kind is not None and kind in self.table else section
        if row not in self.table:
            raise self.unsupported(section, f"{kind or section}: this spec lists no fields for it")
        read, inert = self.table[row]
        self.fields(section, node, read, inert)

    def unsupported(self, section: str, what: str) -> SpecError:
        return self.fail(f"{section}: not supported: {what}")

    def fields(self, section: str, node: Mapping[str, Any] | None, read: tuple[str, ...], inert: Mapping[str, str] | None = None) -> None:
        """Refuse any key of ``node`` outside ``read`` (what the spec reads) and ``inert`` (key → why it changes
        nothing at inference; :data:`INERT` always counts): the upstream class would act on it, this spec would not."""
        known = {"type", SCOPE_KEY, *read, *INERT, *(inert or {})}
        unknown = [key for key in (node or {}) if key not in known]
        if unknown:
            raise self.fail(f"{section}.{unknown[0]}: not read by this spec (it reads {', '.join(sorted(set(read)))})",
                            f"remove {section}.{unknown[0]}, or use a spec that implements it")

    def norm(self, section: str, cfg: Mapping[str, Any] | None, default: tuple[float, float] = TORCH_BATCH_NORM) -> tuple[float, float]:
        """``(eps, momentum)`` of a BatchNorm config; keys it leaves out take ``default`` (the reading class's).
        ``None`` is a layer without a norm, which no spec builds."""
        if cfg is None:
            raise self.unsupported(f"{section}.norm_cfg", "None (no norm layer after the convs)")
        if cfg.get("type", "BN") not in NORMS:
            raise self.unsupported(section, f"norm {cfg.get('type')}")
        self.fields(f"{section}.norm_cfg", cfg, NORM_KEYS)
        return float(cfg.get("eps", default[0])), float(cfg.get("momentum", default[1]))

    def conv_bias(self, section: str, cfg: Mapping[str, Any] | None, kinds: tuple[str, ...] = (CONV2D,)) -> bool:
        """Whether a conv built from ``cfg`` (mmcv's ``build_conv_layer``/``build_upsample_layer``) has a bias: the
        torch layer's own default (True) unless the config says ``bias``; a conv type other than ``kinds`` is refused."""
        cfg = cfg or {"type": CONV2D}
        if cfg.get("type", CONV2D) not in kinds:
            raise self.unsupported(section, f"type {cfg.get('type')!r} (implemented: {', '.join(kinds)})")
        self.fields(section, cfg, ("bias",))
        return bool(cfg.get("bias", True))

    def required(self, section: str, node: Mapping[str, Any], key: str) -> Any:
        """A key the upstream class has no default for."""
        if key not in node:
            raise self.fail(f"{section}.{key} is not set (the upstream class has no default for it)", f"set {section}.{key}")
        return node[key]

    def numbers(self, field: str, values: Any, count: int) -> tuple[float, ...]:
        """``values`` as ``count`` floats (a range, a voxel size, a mean), or refused by name."""
        found = tuple(float(v) for v in values)
        if len(found) != count:
            raise self.fail(f"{field} has {len(found)} numbers, {count} expected", f"give {field} {count} numbers")
        return found

    def three(self, field: str, values: Any) -> tuple[float, float, float]:
        a, b, c = self.numbers(field, values, 3)
        return a, b, c

    def six(self, field: str, values: Any) -> tuple[float, float, float, float, float, float]:
        a, b, c, d, e, f = self.numbers(field, values, 6)
        return a, b, c, d, e, f

    def agree(self, field: str, value: Any, reference_field: str, reference: Any, fix: str) -> None:
        """A cross-check: ``field`` must equal what ``reference_field`` makes it (the layer before, the grid)."""
        if value != reference:
            raise self.fail(f"{field} is {_plain(value)}, but {reference_field} makes it {_plain(reference)}", fix)


def _plain(value: Any) -> Any:
    """Tuples as the lists a config writes, for messages."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
