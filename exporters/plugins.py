"""TensorRT plugin nodes in an ONNX graph: which a graph carries, which a builder's registry holds.

A deployed graph may end in a node only TensorRT runs (a detector exported with its NMS appends
``EfficientNMS_TRT``). Such nodes are written in the ``TRT`` domain: TensorRT's ONNX parser resolves an
unknown op by its name through the plugin registry whatever the domain, while ``onnx.checker`` accepts a
custom domain but rejects an unknown op in the default one (where AWML's graph-surgeon script puts it).
ONNX Runtime has no kernel for these ops, so the part of the graph it can check is the prefix that feeds
them: :func:`prefix_before_plugins` cuts it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PLUGIN_DOMAIN = "TRT"
# Standard ONNX ops that TensorRT's ONNX parser imports through a creator of its standard plugin library, not a core
# layer, when an attribute leaves the core's one value: ScatterElements with a reduction (TensorRT's core scatter
# writes, its library's ScatterElements creator reduces with add/mul/min/max; FRNet's scatter-max is one). A runtime
# without that library (TensorRT-RTX) rejects the node at parse ("Unsupported reduction type", no node named).
# op type -> (attribute, the value the core handles, the creator's name)
PARSED_AS_PLUGIN = {"ScatterElements": ("reduction", "none", "ScatterElements")}


def plugin_ops(model) -> tuple[str, ...]:
    """The op types of ``model``'s nodes in :data:`PLUGIN_DOMAIN` (an ``onnx.ModelProto`` or a path), sorted."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return tuple(sorted({node.op_type for node in model.graph.node if node.domain == PLUGIN_DOMAIN}))


def parser_plugin_ops(model) -> tuple[str, ...]:
    """The creators of TensorRT's standard plugin library that the parser needs for ``model``'s standard-domain
    nodes (:data:`PARSED_AS_PLUGIN`; an ``onnx.ModelProto`` or a path), sorted."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    needed = set()
    for node in model.graph.node:
        rule = PARSED_AS_PLUGIN.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rule is None:
            continue
        attribute, core, creator = rule
        value = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == attribute), core.encode())
        if (value.decode() if isinstance(value, bytes) else str(value)) != core:
            needed.add(creator)
    return tuple(sorted(needed))


def prefix_before_plugins(path: Path, out: Path) -> tuple[str, ...]:
    """Write to ``out`` the graph of ``path`` from its inputs up to the tensors its plugin nodes read; return
    those tensor names (empty, and nothing written, when the graph has no plugin node)."""
    import onnx
    import onnx.utils

    model = onnx.load(str(path))
    feeds = list(dict.fromkeys(name for node in model.graph.node if node.domain == PLUGIN_DOMAIN for name in node.input if name))
    if not feeds:
        return ()
    initializers = {init.name for init in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in initializers]
    onnx.utils.extract_model(str(path), str(out), inputs, feeds, check_model=False)
    return tuple(feeds)


def registry_check(trt, needed: Iterable[str]) -> tuple[list[str], tuple[str, ...]]:
    """(the creator names a TensorRT module's plugin registry holds once its standard plugin library is
    initialised, the names in ``needed`` it lacks). ``trt``: ``tensorrt`` or ``tensorrt_rtx_bindings``, which share
    this API."""
    trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.ERROR), "")
    registered = sorted(creator.name for creator in trt.get_plugin_registry().all_creators)
    have = set(registered)
    return registered, tuple(name for name in needed if name not in have)
