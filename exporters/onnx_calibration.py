"""Activation ranges for an int8 graph: ONNX Runtime's own calibrators (``onnxruntime.quantization.calibrate``), run so
that what they hold is one sample's tensors, whatever the graph's size. Stateless; no model knowledge.

``quantize_static`` calibrating by itself held a lidar detector's backbone (a 32 × 1020 × 1020 input, 60 nodes) at
6.5 GiB for one sample and 13.4 GiB from the second on, where the plain graph runs in 2.2 GiB (ONNX Runtime 1.32,
measured). Two reasons, and what is done about each:

- The calibrator makes every float tensor a graph output (through a ReduceMin/ReduceMax pair for minmax, whole for
  the histogram methods) and runs that graph in ONNX Runtime's default execution order, a depth-first walk back from
  the outputs taken in turn: a reduction runs only when the walk reaches its output, long after the tensor it reads,
  so every intermediate tensor is alive at once, and the CPU arena grows around that pattern again on the next run.
  Here the calibrator's session is made again with ``ExecutionOrder.PRIORITY_BASED`` (Kahn's order, the graph's own
  node order breaking ties: the calibrator inserts each reduction just before the tensor's first consumer), which
  frees each tensor as the plain graph does. The ranges are the same: the order changes when a node runs, not what.
- The histogram calibrators (entropy, percentile) keep every sample's whole tensors until ``collect_data`` returns.
  Samples are handed over one per call, which is what ``quantize_static``'s ``CalibStridedMinMax=1`` does (for every
  method); minmax merges its ranges per call, so its result is exactly that of one call over all samples.
  ``CalibMaxIntermediateOutputs`` is not used: in ONNX Runtime 1.32 ``MinMaxCalibrater.collect_data`` clears the
  outputs it collected at that count without computing their ranges (the samples are lost).

The ranges are written as ONNX Runtime's calibration cache (``save_tensors_data``), which ``quantize_static`` reads
(``calibration_cache_path``) instead of calibrating again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

COLLECTION = "one sample per collect_data call, priority-ordered session"  # part of an int8 artifact's key


class _Feeds:
    """ONNX Runtime's ``CalibrationDataReader``: the calibration inputs one after the other (it is subclassed at call
    time, so importing this module does not import ONNX Runtime)."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._feeds = list(feeds)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return {name: np.ascontiguousarray(value) for name, value in self._feeds[self._next - 1].items()}

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self._feeds)


def reader(feeds: Sequence[Mapping[str, np.ndarray]]):
    """A ``CalibrationDataReader`` over ``feeds``."""
    from onnxruntime.quantization import CalibrationDataReader

    return type("Feeds", (_Feeds, CalibrationDataReader), {})(feeds)


def calibrate(onnx_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], method, cache: Path, *, symmetric: bool) -> Path:
    """Calibrate ``onnx_path`` on ``feeds`` with ONNX Runtime's calibrator for ``method`` (a ``CalibrationMethod``),
    the op types ``quantize_static`` calibrates, one sample at a time in a priority-ordered session, and write the
    ranges to ``cache`` (ONNX Runtime's calibration cache). ``symmetric``: ranges made symmetric about 0."""
    import onnxruntime
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    with tempfile.TemporaryDirectory(prefix="awml-calibrate-") as scratch:
        augmented = Path(scratch) / "augmented.onnx"
        calibrator = create_calibrator(onnx_path, sorted({*QLinearOpsRegistry, *QDQRegistry}), augmented_model_path=str(augmented),
                                       calibrate_method=method, extra_options={"symmetric": symmetric})
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the calibrator's own
        options.execution_order = onnxruntime.ExecutionOrder.PRIORITY_BASED
        calibrator.infer_session = onnxruntime.InferenceSession(str(augmented), sess_options=options,
                                                                providers=calibrator.execution_providers)
        for index, feed in enumerate(feeds):
            calibrator.collect_data(reader([feed]))
            log.debug("calibrated %s on sample %d of %d", onnx_path.name, index + 1, len(feeds))
        save_tensors_data(calibrator.compute_data(), cache)
        del calibrator  # its session and graph, before the scratch folder holding the augmented graph goes
    return cache
