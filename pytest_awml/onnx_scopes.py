"""Which PyTorch module an ONNX node came from: the exporters' own records of it, read in one place.

torch.onnx writes the module that produced a node in two ways:

- the TorchScript exporter (``dynamo=False``, what this project exports with, as AWML does) names each node after
  its scope: ``/pts_backbone/blocks.1/blocks.1.3/Conv``. Each segment is a module's *unqualified* name (torch's
  ``_unqualified_variable_name``: from its last non-numeric atom on), so ``blocks.1.3`` under ``pts_backbone`` and
  ``blocks.1`` is ``pts_backbone.blocks.1.3``, and the full dotted name is rebuilt segment by segment;
- the dynamo exporter stores ``pkg.torch.onnx.name_scopes`` in each node's ``metadata_props``: the
  ``nn_module_stack`` paths (fully qualified, ``@N`` for a module's N-th call) and the node's own name last.

Everything else (a node the exporter added without a scope, a graph edited by hand) maps to no module. The
framework maps nodes only through :func:`module_of`; nothing else parses node names.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable

NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # the dynamo exporter's metadata key (torch/onnx/_internal/exporter/_core.py)
ROOT = ""  # the dotted name of the exported module itself, as in named_modules()


def _resolve(segments: Iterable[str], names: Collection[str] | None) -> str:
    """The dotted module name a TorchScript scope path names (``segments``: its parts, the op left out)."""
    current: list[str] = []
    for segment in segments:
        atoms = segment.split(".")
        # the readings of the segment under ``current``, the shortest first: its leading atom is an attribute of
        # ``current`` or of an ancestor whose remaining atoms are the segment's indices (``blocks.1`` then
        # ``blocks.1.3`` is ``blocks.1.3``); the last reading is a new attribute of ``current`` itself
        readings = [full for cut in range(len(current) + 1)
                    if len(full := current[:cut] + atoms) > len(current) and full[: len(current)] == current]
        # without the names, the shortest: what the exporter's rule makes of a child reached by index
        current = readings[0] if names is None else next((r for r in readings if ".".join(r) in names), readings[-1])
    return ".".join(current)


def module_of(node, names: Collection[str] | None = None) -> str | None:
    """The dotted name (as ``named_modules()`` gives it) of the module that produced ``node``, or None.

    ``names``: the exported module's ``named_modules()`` names; with them an ambiguous TorchScript scope resolves to
    a module that exists, and a scope naming none maps to None.
    """
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            scopes = ast.literal_eval(prop.value)
            paths = [s.split("@")[0] for s in scopes[:-1] if s.split("@")[0]]  # the last entry is the node's own name
            found = paths[-1] if paths else ROOT
            return found if names is None or found in names else None
    name = node.name
    if not name.startswith("/"):
        return None  # an unscoped name (``Conv_3``, a hand-made node): no module recorded
    segments = name.strip("/").split("/")[:-1]  # the last part is the op (``Conv``, ``Conv_1``)
    found = _resolve(segments, names)
    return found if names is None or found in names else None


def node_modules(graph, names: Collection[str] | None = None) -> dict[str, str]:
    """Every node of ``graph`` (an ``onnx.GraphProto``) that maps to a module: node name → module name."""
    mapped = {}
    for node in graph.node:
        module = module_of(node, names)
        if module is not None:
            mapped[node.name] = module
    return mapped


def within(module: str, ancestor: str) -> bool:
    """``module`` is ``ancestor`` or one of its submodules (dotted names; the root holds everything)."""
    return ancestor == ROOT or module == ancestor or module.startswith(ancestor + ".")
