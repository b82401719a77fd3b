"""AWML's ``--nms`` graph as recorded by ``tools/record_awml_nms.py``, and this project's export held to it.

Shared by the recording tool (which compares before it writes) and ``tests/test_efficient_nms.py`` (which
compares in every CI run): the EfficientNMS_TRT node's op and attributes, the graph's four outputs (names,
element types, shapes) and the plugin's inputs (boxes, scores) on one frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.onnx_export import export_onnx
from model_specs.recording import Recording, agrees, max_abs, scale_of
from model_specs.yolox.efficient_nms import PLUGIN
from pytest_awml.spec import ModelSpec

NAME = "yolox-tiny-nms"
SAMPLE_SEED = 7


def awml_node(graph) -> dict[str, Any]:
    """The graph's EfficientNMS_TRT node as plain data (attribute values decoded, floats as stored)."""
    import onnx

    nodes = [n for n in graph.graph.node if n.op_type == PLUGIN]
    if len(nodes) != 1:
        raise ValueError(f"expected one {PLUGIN} node, the graph has {len(nodes)}")
    node = nodes[0]
    attributes = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        attributes[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return {"op_type": node.op_type, "domain": node.domain, "attributes": attributes, "inputs": list(node.input),
            "outputs": list(node.output)}


def graph_outputs(graph) -> list[dict[str, Any]]:
    """Each graph output's name, element type name and dims (ints, or the symbol's name)."""
    import onnx

    found = []
    for value in graph.graph.output:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
        found.append({"name": value.name, "type": onnx.TensorProto.DataType.Name(tensor.elem_type), "shape": dims})
    return found


def _export(spec: ModelSpec, name: str, model, images: torch.Tensor, path: Path) -> Path:
    component = spec.component(name)
    export_onnx(component.extract(model), (images,), path, component=name, inputs=component.inputs,
                outputs=component.outputs, options=component.onnx, plugins=component.plugins)
    return path


def decoded_outputs(spec: ModelSpec, model, images: torch.Tensor, folder: Path) -> dict[str, np.ndarray]:
    """This project's ``yolox_decoded`` graph run by ONNX Runtime: the plugin's inputs."""
    import onnxruntime

    path = _export(spec, "yolox_decoded", model, images, Path(folder) / "ours_decoded.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(["boxes", "scores"], {"images": images.numpy()})
    return {"boxes": boxes, "scores": scores}


def compare(recording: Recording, decoded: dict[str, np.ndarray], spec: ModelSpec, path: Path, model,
            images: torch.Tensor) -> list[str]:
    """Where this project's export differs from AWML's recorded graph (empty when it does not).

    The domain is not compared: AWML writes the node in the default domain (onnx.checker rejects that;
    TensorRT's parser resolves plugins by name in any domain), this project in ``TRT``."""
    import onnx

    problems = []
    ours = onnx.load(str(_export(spec, "yolox_nms", model, images, path)))
    node, recorded = awml_node(ours), recording.meta["node"]
    if node["op_type"] != recorded["op_type"]:
        problems.append(f"plugin op {node['op_type']!r}, AWML's is {recorded['op_type']!r}")
    if node["attributes"] != recorded["attributes"]:
        problems.append(f"plugin attributes {node['attributes']}, AWML's are {recorded['attributes']}")
    if graph_outputs(ours) != recording.meta["outputs"]:
        problems.append(f"graph outputs {graph_outputs(ours)}, AWML's are {recording.meta['outputs']}")
    opset = next(o.version for o in ours.opset_import if o.domain in ("", "ai.onnx"))
    if opset != recording.meta["opset"]:
        problems.append(f"opset {opset}, AWML's graph has {recording.meta['opset']}")
    for name in ("boxes", "scores"):
        difference, scale = max_abs(decoded[name], recording.arrays[name]), scale_of(recording.arrays[name])
        if not agrees(difference, scale):
            problems.append(f"plugin input {name}: off by {difference:.3g} (values up to {scale:.3g})")
    return problems
