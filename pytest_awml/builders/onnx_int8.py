"""The ``onnx-int8`` format: the component's ONNX file as an int8 QDQ graph in TensorRT's explicit-quantization form
(:mod:`exporters.onnx_int8`: ONNX Runtime's quantizer set to TensorRT's conventions, and why), calibrated on the
component's inputs for its calibration samples, the nodes its spec keeps in float left unquantized.

What TensorRT would refuse is caught here, by node name (:func:`exporters.onnx_int8.qdq_problems`); where TensorRT-RTX
is installed its parser reads the graph too, and a node it rejects fails this build, not a later engine build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.errors import ExportError
from exporters.onnx_calibration import COLLECTION
from exporters.onnx_int8 import parse_coverage, quantize_int8, quantizer_version
from exporters.tensorrt_build import TENSORRT_RTX
from pytest_awml.builders.base import ArtifactBuilder, BuildContext, Ingredient
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx import onnx_problem
from pytest_awml.digests import content_digest
from pytest_awml.spec import Component

FORMAT = "onnx-int8"


class OnnxInt8Builder(ArtifactBuilder):
    """Keyed on the fp32 file it quantizes, the calibration data's digest, the int8 settings (method, sample count, nodes
    kept float), the quantizer's version and how its calibrator is fed (one sample at a time changes a histogram
    method's ranges from one call over all samples)."""

    format = FORMAT
    requires = (ONNX, Ingredient.CALIBRATION)

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        if plugins:  # calibration runs the graph in ONNX Runtime, which has no kernel for them
            return (f"an int8 graph is calibrated by running it in ONNX Runtime, which has no kernel for {', '.join(plugins)}: "
                    "quantize the component before the plugin (its own component)")
        return None

    def filename(self, component: Component) -> str:
        return f"{component.name}.int8.onnx"

    def verify(self, path: Path) -> str | None:
        return onnx_problem(path)

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        calibrated = context.calibrated
        data = content_digest({str(i): content_digest(feed) for i, feed in enumerate(calibrated.inputs)})
        return {"onnx_sha256": context.artifact(ONNX).sha256, "calibration_data": data, **calibrated.settings.key(),
                "quantizer": quantizer_version(), "calibration_collection": COLLECTION}

    def write(self, context: BuildContext, path: Path) -> dict[str, Any]:
        calibrated = context.calibrated
        settings = calibrated.settings
        figures = quantize_int8(context.artifact(ONNX).path, path, calibrated.inputs, settings.calibration, component=context.label,
                                exclude=settings.keep_float)
        details: dict[str, Any] = {"from": str(context.artifact(ONNX).path), "quantizer": quantizer_version(),
                                   "calibration_method": settings.calibration.value, "calibrated_on": calibrated.source, **figures}
        if TENSORRT_RTX.unavailable() is None:  # the parser TensorRT-RTX engines are built with reads it now
            parsed = parse_coverage(path, TENSORRT_RTX.module)
            if not parsed["parsed"]:
                lines = "; ".join(f"{r['node']} ({r['op']}): {r['error']}" for r in parsed["rejected"])
                raise ExportError(context.label, "int8 tensorrt-rtx parse", f"the parser rejected {len(parsed['rejected'])} node(s): {lines}")
            details["tensorrt_rtx_parse"] = parsed
        return details
