"""ONNX file → int8 QDQ graph in TensorRT's explicit-quantization form, and the checks TensorRT's parser would make
of it, by node name. Stateless; no model knowledge.

The quantizer is ONNX Runtime's ``quantize_static`` (``onnxruntime.quantization``), not NVIDIA's ModelOpt: ModelOpt's
ONNX PTQ (``nvidia-modelopt[onnx]`` 0.47) pins ``onnxruntime-gpu~=1.24`` and ``onnx~=1.21`` on Linux x86 (the CPU
``onnxruntime`` and ``onnx`` this project tests with would be replaced) and pulls ``cupy-cuda12x``; ONNX Runtime is
already a dependency and its QDQ quantizer, set to TensorRT's conventions, writes graphs TensorRT builds. Those
conventions, and why each is set:

- ``QuantFormat.QDQ``: QuantizeLinear/DequantizeLinear pairs around float ops is the explicit-quantization form
  TensorRT reads (``QOperator``'s QLinearConv is ONNX Runtime's own);
- int8 activations and weights, both symmetric (zero point 0): TensorRT's int8 is symmetric only;
- weights per channel on their output-channel axis: TensorRT's convolution and matmul weights take per-channel
  scales there, activations per tensor;
- biases left in float (``QuantizeBias`` off): ONNX Runtime otherwise stores an int32 bias behind a
  DequantizeLinear, which TensorRT's parser rejects (``DequantizeLinear: input has type Int32``); TensorRT
  fuses the float bias into the int8 convolution itself.

Calibration is :mod:`exporters.onnx_calibration`'s (ONNX Runtime's calibrators, held to one sample's tensors; the
ranges handed to ``quantize_static`` as its calibration cache). :func:`qdq_problems` names what TensorRT would refuse
in a QDQ graph (made here or handed in) before any builder runs.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path

import numpy as np

from exporters.errors import ExportError
from exporters.onnx_calibration import calibrate

log = logging.getLogger(__name__)

INT8_TYPES = frozenset({2, 3})  # onnx.TensorProto.UINT8, INT8: the 8-bit types TensorRT's QDQ takes
INT8 = 3  # onnx.TensorProto.INT8
PER_CHANNEL_OPSET = 13  # QuantizeLinear/DequantizeLinear take an axis (per-channel scales) from opset 13 on
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


class Calibration(str, Enum):
    """How activation ranges are chosen from the calibration data (ONNX Runtime's ``CalibrationMethod``): ``minmax``
    the observed range, ``entropy`` the KL-divergence threshold (TensorRT's own calibrator's method), ``percentile``
    the 99.999th percentile of |x|. AWML's 2.6.1_quant used an MSE-style search, which ONNX Runtime does not offer:
    ``percentile`` and ``entropy`` are the outlier-clipping methods closest to it."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"

    def ort(self):
        from onnxruntime.quantization import CalibrationMethod

        return {Calibration.MINMAX: CalibrationMethod.MinMax, Calibration.ENTROPY: CalibrationMethod.Entropy,
                Calibration.PERCENTILE: CalibrationMethod.Percentile}[self]


def quantizer_version() -> str:
    """The quantizer's version (ONNX Runtime's): a different one may place or scale the pairs otherwise."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def calibration_cache(onnx_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], method: Calibration, cache: Path, *,
                      component: str) -> Path:
    """Calibrate ``onnx_path`` on ``feeds`` once and keep the activation ranges in ``cache`` (ONNX Runtime's
    calibration cache), so that several graphs (a layer kept in float at a time) share one calibration."""
    if not feeds:
        raise ExportError(component, "int8 calibration", "no calibration data: give the int8 settings at least one sample")
    with tempfile.TemporaryDirectory(prefix="awml-int8-") as scratch:
        try:
            return calibrate(_per_channel_source(onnx_path, Path(scratch)), feeds, method.ort(), cache, symmetric=True)
        except Exception as exc:  # ONNX Runtime raises ValueError, RuntimeError, its own Fail… from a graph it cannot run
            raise ExportError(component, "int8 calibration", f"{type(exc).__name__}: {str(exc).strip()[:400]}") from exc


def _per_channel_source(onnx_path: Path, scratch: Path) -> Path:
    """``onnx_path``, or its conversion to opset 13 in ``scratch`` where it is older: per-channel weights need
    DequantizeLinear's axis (a detector exported at opset 11)."""
    import onnx

    if _opset(onnx.load(str(onnx_path), load_external_data=False)) >= PER_CHANNEL_OPSET:
        return onnx_path
    from onnx import version_converter

    source = scratch / "opset13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(onnx_path)), PER_CHANNEL_OPSET), str(source))
    return source


def quantize_int8(onnx_path: Path, out_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], method: Calibration, *,
                  component: str, exclude: Iterable[str] = (), cache: Path | None = None) -> dict:
    """Write ``onnx_path`` as an int8 QDQ graph at ``out_path``, calibrated on ``feeds`` (or on ``cache``'s ranges when
    that file exists), the nodes named in ``exclude`` left in float; checked by :func:`qdq_problems`. Returns figures
    for the report: nodes quantized, kept float."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    excluded = sorted(set(exclude))
    graph_nodes = {n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}
    unknown = [n for n in excluded if n not in graph_nodes]
    if unknown:
        raise ExportError(component, "int8 exclude", f"node(s) {unknown} to keep in float are not in {onnx_path.name}; "
                                                     "name ONNX nodes as the graph does (the report's int8 sensitivity lists them)")
    if not feeds and (cache is None or not cache.is_file()):
        raise ExportError(component, "int8 calibration", "no calibration data: give the int8 settings at least one sample")
    opset = _opset(onnx.load(str(onnx_path), load_external_data=False))
    with tempfile.TemporaryDirectory(prefix="awml-int8-") as scratch:
        source = _per_channel_source(onnx_path, Path(scratch))
        if cache is None or not cache.is_file():  # calibrated here, bounded to one sample's tensors (onnx_calibration)
            cache = calibration_cache(source, feeds, method, cache or Path(scratch) / "ranges.json", component=component)
        try:
            quantize_static(str(source), str(out_path), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                            calibrate_method=method.ort(), calibration_cache_path=str(cache),
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                           "CalibTensorRangeSymmetric": True,
                                           "TmpDir": scratch})
        except Exception as exc:  # ONNX Runtime raises ValueError, RuntimeError, its own Fail… from a graph it cannot take
            raise ExportError(component, "int8 quantize", f"{type(exc).__name__}: {str(exc).strip()[:400]}") from exc
    model = onnx.load(str(out_path))
    problems = qdq_problems(model)
    if problems:
        raise ExportError(component, "int8 qdq", "TensorRT would refuse this graph: " + "; ".join(problems))
    # a node kept float may still read a DequantizeLinear's output (its producer's pair): its weights stay float
    quantized = sorted({c.name for c in model.graph.node if c.op_type not in QDQ_OPS and c.name not in excluded
                        and any(i.endswith("_DequantizeLinear_Output") for i in c.input)})
    pairs = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    return {"quantized_nodes": len(quantized), "kept_float": excluded, "opset": max(opset, PER_CHANNEL_OPSET), "qdq_pairs": pairs}


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _elem_type(model, name: str, constants: Mapping[str, np.ndarray]) -> int | None:
    from onnx import helper

    if name in constants:
        return helper.np_dtype_to_tensor_dtype(constants[name].dtype)
    for value in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        if value.name == name:
            return value.type.tensor_type.elem_type
    return None


def qdq_problems(model) -> list[str]:
    """What TensorRT's explicit quantization refuses in ``model`` (an ``onnx.ModelProto``), each naming its node:

    - a DequantizeLinear of anything but 8-bit integers (an int32 bias, as ONNX Runtime quantizes biases by default);
    - a zero point other than 0 (TensorRT's int8 is symmetric);
    - per-channel scales whose count is not the size of their axis in the quantized tensor, or a scale <= 0;
    - a QuantizeLinear whose output feeds anything but a DequantizeLinear, or a graph output (a pair TensorRT cannot fuse
      into the op it brackets: unsupported placement)."""
    constants = _constants(model)
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in model.graph.output}
    opset = _opset(model)
    problems = []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        label = f"{node.op_type} {node.name or node.output[0]!r}"
        scale = constants.get(node.input[1]) if len(node.input) > 1 else None
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if node.op_type == "DequantizeLinear":
            kind = _elem_type(model, node.input[0], constants)
            if kind is not None and kind not in INT8_TYPES:
                from onnx import TensorProto

                problems.append(f"{label} dequantizes {TensorProto.DataType.Name(kind)} (input {node.input[0]!r}): TensorRT takes "
                                "int8/uint8 only; leave biases in float (quantize with QuantizeBias off)")
        if zero is not None and np.any(zero != 0):
            problems.append(f"{label} has zero point(s) {np.unique(zero)[:4].tolist()}: TensorRT's int8 is symmetric; quantize "
                            "with symmetric activations and weights")
        if scale is None:
            problems.append(f"{label}: its scale {node.input[1]!r} is not a constant: TensorRT needs constant scales")
            continue
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            problems.append(f"{label} has scale(s) <= 0 or not finite")
        if scale.size > 1 and opset < PER_CHANNEL_OPSET:
            problems.append(f"{label} has per-channel scales at opset {opset}: an axis needs opset {PER_CHANNEL_OPSET} or later")
        if scale.size > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            data = constants.get(node.input[0])
            shape = data.shape if data is not None else None
            if shape is not None and (not -len(shape) <= axis < len(shape) or shape[axis] != scale.size):
                problems.append(f"{label} has {scale.size} per-channel scales on axis {axis}, its tensor {node.input[0]!r} is "
                                f"{list(shape)}: the scales must count that axis")
        if node.op_type == "QuantizeLinear":
            wrong = [c.name or c.op_type for c in consumers.get(node.output[0], []) if c.op_type != "DequantizeLinear"]
            if wrong or node.output[0] in graph_outputs:
                problems.append(f"{label} feeds {wrong or 'a graph output'}, not a DequantizeLinear: TensorRT fuses Q/DQ pairs "
                                "only (unsupported placement)")
    return problems


def parse_coverage(onnx_path: Path, module: str) -> dict:
    """What a TensorRT parser (``module``: ``tensorrt_rtx_bindings`` or ``tensorrt``) makes of ``onnx_path``: whether it
    parsed, the nodes it rejected (named), and the layer count. Raises :class:`ImportError` when the module is missing."""
    import importlib

    trt = importlib.import_module(module)
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_path))
    rejected = [{"node": e.node_name(), "op": e.node_operator(), "error": e.desc()}
                for e in (parser.get_error(i) for i in range(parser.num_errors))]
    return {"parsed": bool(parsed), "rejected": rejected, "layers": network.num_layers}
