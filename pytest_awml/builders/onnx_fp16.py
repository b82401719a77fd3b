"""The ``onnx-fp16`` format: the component's ONNX file with its weights and compute in float16 and its
inputs and outputs kept float32, for runtimes that take precision from the graph's own types
(TensorRT-RTX's strongly typed networks). The conversion is onnxconverter-common's ``float16``
module (a maintained, widely used converter), not re-implemented here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_awml.builders.base import ArtifactBuilder, BuildContext
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx import onnx_problem
from pytest_awml.device import Device
from pytest_awml.provenance import package_version
from pytest_awml.spec import Component

FORMAT = "onnx-fp16"


def converter_unavailable() -> str | None:
    try:
        from onnxconverter_common import float16  # noqa: F401
    except ImportError as exc:
        return f"onnxconverter-common not importable ({exc}): an fp16 graph cannot be made (pip install 'pytest-awml[tensorrt-rtx]')"
    return None


class OnnxFp16Builder(ArtifactBuilder):
    """Keyed on the fp32 file it converts and the converter's version."""

    format = FORMAT
    requires = (ONNX,)

    def unavailable_reason(self, device: Device) -> str | None:
        return converter_unavailable()

    def filename(self, component: Component) -> str:
        return f"{component.name}.fp16.onnx"

    def verify(self, path: Path) -> str | None:
        return onnx_problem(path)

    def onnx_graph(self) -> str | None:
        return FORMAT

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        return {"onnx_sha256": context.artifact(ONNX).sha256, "converter": package_version("onnxconverter-common")}

    def write(self, context: BuildContext, path: Path) -> dict[str, Any]:
        import onnx
        from onnxconverter_common import float16

        # keep_io_types: the node feeds and reads float32 buffers, as a deployment does; casts sit inside
        converted = float16.convert_float_to_float16(onnx.load(str(context.artifact(ONNX).path)), keep_io_types=True)
        onnx.checker.check_model(converted, full_check=True)
        onnx.save(converted, str(path))
        return {"from": str(context.artifact(ONNX).path), "nodes": len(converted.graph.node)}
