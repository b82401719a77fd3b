"""int8: the QDQ graph in TensorRT's form, what TensorRT would refuse named at export, and TensorRT-RTX building it on
the CPU. The end-to-end gates (boxes, metric at int8) run in tests/test_plugin_int8.py on the trained tiny specs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from exporters.onnx_int8 import Calibration, parse_coverage, qdq_problems, quantize_int8
from exporters.signature import TensorSpec
from exporters.tensorrt_build import TENSORRT_RTX, EngineOptions, build_engine
from int8_graphs import conv_chain, conv_net, feeds

rtx = pytest.mark.skipif(TENSORRT_RTX.unavailable() is not None, reason=str(TENSORRT_RTX.unavailable()))


class _Reader(CalibrationDataReader):
    def __init__(self, data):
        self.data = iter(data)

    def get_next(self):
        return next(self.data, None)


def test_onnx_runtime_s_defaults_are_named_as_trt_would_refuse_them(tmp_path):
    """quantize_static's defaults quantize biases to int32 behind a DequantizeLinear: the check names that node."""
    out = tmp_path / "default.onnx"
    quantize_static(str(conv_net(tmp_path / "net.onnx")), str(out), _Reader(feeds()), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    problems = qdq_problems(onnx.load(str(out)))
    assert any("dequantizes INT32" in p and "b1" in p for p in problems), problems


@rtx
def test_the_rtx_parser_rejects_an_int32_bias_as_the_check_says(tmp_path):
    out = tmp_path / "default.onnx"
    quantize_static(str(conv_net(tmp_path / "net.onnx")), str(out), _Reader(feeds()), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    parsed = parse_coverage(out, TENSORRT_RTX.module)
    assert not parsed["parsed"] and any("Int32" in r["error"] for r in parsed["rejected"])


@pytest.mark.parametrize("method", list(Calibration))
def test_the_int8_graph_is_trt_s_form_and_close_to_fp32(tmp_path, method):
    net, out = conv_net(tmp_path / "net.onnx"), tmp_path / "int8.onnx"
    figures = quantize_int8(net, out, feeds(), method, component="net")
    model = onnx.load(str(out))
    assert qdq_problems(model) == []
    assert figures["quantized_nodes"] == 3 and figures["kept_float"] == []  # conv1, relu1, conv2
    dq = {n.input[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert "b1" not in str(list(dq)) and any(i.name == "b1" for i in model.graph.initializer)  # the bias stays float
    sample = feeds(1)[0]
    ref = onnxruntime.InferenceSession(str(net)).run(None, sample)[0]
    got = onnxruntime.InferenceSession(str(out)).run(None, sample)[0]
    assert 0 < np.abs(ref - got).max() < 0.1 * np.abs(ref).max()  # quantized (not equal), and close


def test_a_node_kept_float_keeps_its_weights_float(tmp_path):
    out = tmp_path / "int8.onnx"
    figures = quantize_int8(conv_net(tmp_path / "net.onnx"), out, feeds(), Calibration.MINMAX, component="net", exclude=["conv2"])
    model = onnx.load(str(out))
    conv2 = next(n for n in model.graph.node if n.name == "conv2")
    assert figures["quantized_nodes"] == 2 and conv2.input[1] == "w2"  # its weights float (its input is relu1's pair)


def test_an_opset_11_graph_is_raised_to_13_for_per_channel_scales(tmp_path):
    out = tmp_path / "int8.onnx"
    figures = quantize_int8(conv_net(tmp_path / "net.onnx", opset=11), out, feeds(), Calibration.MINMAX, component="net")
    assert figures["opset"] == 13 and qdq_problems(onnx.load(str(out))) == []
    onnxruntime.InferenceSession(str(out))


def test_a_shared_calibration_cache_gives_the_same_graph(tmp_path):
    """The sensitivity's graphs share one calibration: ranges read back from the cache quantize as calibrating did."""
    net, cache = conv_net(tmp_path / "net.onnx"), tmp_path / "ranges.json"
    quantize_int8(net, tmp_path / "a.onnx", feeds(), Calibration.MINMAX, component="net", cache=cache)
    assert cache.is_file()
    quantize_int8(net, tmp_path / "b.onnx", (), Calibration.MINMAX, component="net", cache=cache)
    scales = [{i.name: i.raw_data for i in onnx.load(str(tmp_path / p)).graph.initializer if i.name.endswith("_scale")}
              for p in ("a.onnx", "b.onnx")]
    assert scales[0] == scales[1]


class _StridedReader(_Reader):
    """A reader quantize_static's CalibStridedMinMax can walk: it asks for len() and set_range()."""

    def __init__(self, data):
        self.all = list(data)
        super().__init__(self.all)

    def __len__(self):
        return len(self.all)

    def set_range(self, start_index, end_index):
        self.data = iter(self.all[start_index:end_index])


@pytest.mark.parametrize("method", list(Calibration))
def test_the_ranges_are_onnx_runtime_s_own_calibration(tmp_path, method):
    """Calibrated one sample at a time in a priority-ordered session (exporters.onnx_calibration), the graph's scales
    are the ones quantize_static's own calibration gives: minmax's over all samples at once, the histogram methods'
    with its CalibStridedMinMax=1 (which merges their histograms sample by sample, as here)."""
    net, samples = conv_net(tmp_path / "net.onnx"), feeds()
    quantize_int8(net, tmp_path / "ours.onnx", samples, method, component="net")
    strided = {} if method is Calibration.MINMAX else {"CalibStridedMinMax": 1}
    quantize_static(str(net), str(tmp_path / "ort.onnx"), _StridedReader(samples), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=method.ort(),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "CalibTensorRangeSymmetric": True, **strided})
    scales = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / p)).graph.initializer if i.name.endswith("_scale")}
              for p in ("ours.onnx", "ort.onnx")]
    assert sorted(scales[0]) == sorted(scales[1]) and len(scales[0]) >= 4
    for name, scale in scales[0].items():
        np.testing.assert_array_equal(scale, scales[1][name], err_msg=name)


CALIBRATION_PEAK = """
import resource, sys
from pathlib import Path
import numpy as np
from exporters.onnx_calibration import calibrate
from onnxruntime.quantization import CalibrationMethod
graph = Path(sys.argv[1])
feed = {"input": np.random.default_rng(0).standard_normal((1, 16, 512, 512)).astype(np.float32)}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
calibrate(graph, [feed, feed], CalibrationMethod.MinMax, graph.with_suffix(".json"), symmetric=True)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_calibration_holds_a_few_tensors_not_every_tensor_of_the_graph(tmp_path):
    """The memory fix behind the full-size CenterPoint's int8 build: ONNX Runtime's calibrator, left to its default
    execution order, keeps every intermediate tensor of the graph alive at once (this 48-tensor chain of 16 MiB each:
    ~1.6 GiB, growing on the second sample; the full-size backbone: 13.4 GiB). Calibrated here, its peak grows by a few
    tensors, as running the graph does. Measured in a fresh process (its peak RSS is the calibration's)."""
    import subprocess
    import sys

    graph = conv_chain(tmp_path / "chain.onnx", layers=24)
    done = subprocess.run([sys.executable, "-c", CALIBRATION_PEAK, str(graph)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    growth_mib = float(done.stdout.split()[-1])
    assert growth_mib < 12 * 16, f"calibrating grew the peak by {growth_mib:.0f} MiB: more than 12 of the chain's 48 tensors of 16 MiB"


@rtx
def test_tensorrt_rtx_builds_the_int8_graph_on_the_cpu_with_its_op_coverage(tmp_path):
    out = tmp_path / "int8.onnx"
    quantize_int8(conv_net(tmp_path / "net.onnx"), out, feeds(), Calibration.MINMAX, component="net")
    report = build_engine(out, tmp_path / "net.engine", flavor=TENSORRT_RTX, component="net",
                          inputs=(TensorSpec("input", (1, 3, 16, 16)),), options=EngineOptions())
    assert report.size_bytes > 0 and report.coverage is not None
    assert report.coverage.onnx_ops["QuantizeLinear"] >= 2 and report.coverage.rejected == ()


def test_rtx_has_no_int8_flag():
    assert any("no int8 flag" in p for p in EngineOptions(int8=True).problems(TENSORRT_RTX))


def test_the_smallest_float_kept_set_is_the_shortest_ranked_prefix_within_the_limit():
    from pytest_awml.int8_sensitivity import LayerCost, rank, smallest_set

    def layer(node, delta, head):
        return LayerCost(node=node, op="Conv", metric_delta=delta, heads={"out": head})

    everything = layer("(none)", 0.10, 0.5)
    costs = [layer("a", 0.09, 0.1), layer("b", 0.02, 0.4), layer("c", 0.08, 0.3)]
    ranked, by = rank(everything, costs, limit=0.05)
    assert by == "metric" and [c.node for c in ranked] == ["b", "c", "a"]
    measured = {("b",): 0.06, ("b", "c"): 0.04}
    assert smallest_set(everything, ranked, 0.05, lambda names: measured[names]) == (("b", "c"), 0.04)
    assert smallest_set(everything, ranked, 0.01, lambda names: 0.02) == (None, None)  # no prefix is within it
    within = layer("(none)", 0.01, 0.5)
    assert smallest_set(within, ranked, 0.05, lambda names: 1.0) == ((), 0.01)  # all int8 already is
    assert rank(within, costs, 0.05) == (sorted(costs, key=lambda c: 0.5 - c.heads["out"], reverse=True), "heads")


def test_a_graph_ending_in_a_plugin_is_not_quantized_and_says_why():
    from exporters.tensorrt_build import TENSORRT
    from pytest_awml.builders.onnx_int8 import OnnxInt8Builder
    from pytest_awml.builders.tensorrt import EngineBuilder
    from pytest_awml.device import Precision

    assert "no kernel for EfficientNMS_TRT" in OnnxInt8Builder().plugins_unavailable(("EfficientNMS_TRT",))
    assert "no kernel for EfficientNMS_TRT" in EngineBuilder(Precision.INT8, TENSORRT).plugins_unavailable(("EfficientNMS_TRT",))
    assert OnnxInt8Builder().plugins_unavailable(()) is None
