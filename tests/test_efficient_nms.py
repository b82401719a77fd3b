"""AWML's ``--nms`` YOLOX export (``yolox-nms``, ``yolox-tiny-nms``): the EfficientNMS_TRT node and outputs as
AWML's own graph surgery writes them (recorded by tools/record_awml_nms.py), the graph before the plugin
computing AWML's boxes and scores, the plugin's algorithm in torch held to its definition, and every backend
without the plugin skipping with the reason a real TensorRT-RTX registry gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from hypothesis import given, settings, strategies as st

from exporters.errors import ExportError
from exporters.onnx_export import export_onnx
from exporters.plugins import PLUGIN_DOMAIN, plugin_ops, prefix_before_plugins
from exporters.tensorrt_build import TENSORRT_RTX, EngineOptions, build_engine

rtx_unavailable, plugins_missing = TENSORRT_RTX.unavailable, TENSORRT_RTX.plugins_missing
from model_specs.recording import Recording, array_sha256, state_sha256
from model_specs.yolox.efficient_nms import PLUGIN, EfficientNmsConfig, efficient_nms
from model_specs.yolox.nms_recorded import NAME, SAMPLE_SEED, awml_node, compare, decoded_outputs
from model_specs.yolox.postprocess import box_iou, greedy_nms
from model_specs.yolox.spec import NMS_SPEC, TINY_NMS_SPEC, with_efficient_nms
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend
from pytest_awml.runners.pytorch import PyTorchBackend

RECORDED = Path(__file__).parent / "data" / "upstream"


@pytest.fixture(scope="module")
def tiny():
    recording = Recording.load(RECORDED, NAME)
    model = TINY_NMS_SPEC.build_model(None, 0)
    sample = TINY_NMS_SPEC.make_samples(1, SAMPLE_SEED)[0]
    images = TINY_NMS_SPEC.components[0].make_inputs(model, sample)["images"]
    return recording, model, images


def test_the_recording_is_of_these_weights_and_this_frame(tiny):
    recording, model, images = tiny
    assert recording.meta["weights_sha256"] == state_sha256(model.state_dict())
    assert recording.meta["images_sha256"] == array_sha256(images.numpy())
    # what AWML's README command with --nms gives: the deploy script's own argparse defaults
    assert recording.meta["deploy_defaults"] == {"batch_size": 1, "iou_threshold": 0.65, "max_output_boxes": 100, "score_threshold": 0.3}


def test_the_exported_graph_is_awmls(tiny, tmp_path):
    """Node, attributes, outputs, opset and the plugin's inputs, against AWML's add_efficientnms_trt's own graph."""
    recording, model, images = tiny
    problems = compare(recording, decoded_outputs(TINY_NMS_SPEC, model, images, tmp_path), TINY_NMS_SPEC,
                       tmp_path / "nms.onnx", model, images)
    assert problems == []
    assert recording.meta["node"]["domain"] == "" and PLUGIN_DOMAIN == "TRT"  # the one deliberate difference


def test_a_different_threshold_is_caught(tiny, tmp_path):
    recording, model, images = tiny
    looser = with_efficient_nms(TINY_NMS_SPEC, "looser", EfficientNmsConfig(score_threshold=0.25))
    problems = compare(recording, decoded_outputs(looser, model, images, tmp_path), looser, tmp_path / "nms.onnx", model, images)
    assert len(problems) == 1 and "score_threshold" in problems[0]


def test_the_plugin_inputs_recorded_are_not_empty(tiny):
    """The recorded frame gives detections above AWML's 0.3: the comparison is not over zeros."""
    recording, model, images = tiny
    assert (recording.arrays["scores"] >= 0.3).sum() >= 5
    count = TINY_NMS_SPEC.component("yolox_nms").extract(model)(images)[0]
    assert int(count) >= 5


def test_the_graph_before_the_plugin_runs_in_onnx_runtime_and_the_whole_graph_does_not(tiny, tmp_path):
    _, model, images = tiny
    component = TINY_NMS_SPEC.component("yolox_nms")
    path = tmp_path / "nms.onnx"
    report = export_onnx(component.extract(model), (images,), path, component="yolox_nms", inputs=component.inputs,
                         outputs=component.outputs, options=component.onnx, plugins=component.plugins)
    assert "plugins" in report.steps and plugin_ops(path) == (PLUGIN,)
    with pytest.raises(Exception, match=PLUGIN):
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = prefix_before_plugins(path, tmp_path / "prefix.onnx")
    boxes, scores = onnxruntime.InferenceSession(str(tmp_path / "prefix.onnx")).run(list(feeds), {"images": images.numpy()})
    with torch.no_grad():
        expected = component.extract(model).decoded(images)
    np.testing.assert_allclose(boxes, expected[0].numpy(), atol=1e-2, rtol=1e-4)
    np.testing.assert_allclose(scores, expected[1].numpy(), atol=1e-5)


def test_a_graph_without_the_declared_plugin_fails_its_export(tiny, tmp_path):
    _, model, images = tiny
    component = TINY_NMS_SPEC.component("yolox_decoded")
    with pytest.raises(ExportError, match="step 'plugins'.*declares \\['EfficientNMS_TRT'\\]"):
        export_onnx(component.extract(model), (images,), tmp_path / "d.onnx", component="yolox_decoded", inputs=component.inputs,
                    outputs=component.outputs, options=component.onnx, plugins=(PLUGIN,))


@pytest.mark.skipif(rtx_unavailable() is not None, reason=str(rtx_unavailable()))
def test_tensorrt_rtx_has_no_efficient_nms_and_its_parser_says_the_same(tiny, tmp_path):
    """The skip reason is the registry's answer, and the real parser agrees with it."""
    _, model, images = tiny
    reason = plugins_missing((PLUGIN,))
    assert reason is not None and "no EfficientNMS_TRT plugin" in reason and "TensorRT proper" in reason
    component = TINY_NMS_SPEC.component("yolox_nms")
    path = tmp_path / "nms.onnx"
    export_onnx(component.extract(model), (images,), path, component="yolox_nms", inputs=component.inputs,
                outputs=component.outputs, options=component.onnx, plugins=component.plugins)
    with pytest.raises(ExportError, match="tensorrt-rtx parse.*EfficientNMS_TRT.*Plugin not found"):
        build_engine(path, tmp_path / "nms.engine", flavor=TENSORRT_RTX, component="yolox_nms", inputs=component.inputs,
                     options=EngineOptions())


def test_backends_without_the_plugin_say_so_and_pytorch_runs_it():
    assert "no kernel for the TensorRT plugin op(s) EfficientNMS_TRT" in OnnxRuntimeBackend().plugins_unavailable((PLUGIN,))
    assert OnnxRuntimeBackend().plugins_unavailable(()) is None
    assert PyTorchBackend().plugins_unavailable((PLUGIN,)) is None


def test_the_full_size_variant_is_awmls_deploy_default():
    cfg = NMS_SPEC.params["model"]
    assert NMS_SPEC.component("yolox_nms").inputs[0].shape == (1, 3, *cfg.input_size)
    assert NMS_SPEC.component("yolox_nms").plugins == (PLUGIN,) and NMS_SPEC.component("yolox_decoded").plugins == ()
    assert cfg.opset == 11


# -- the plugin's algorithm in torch, against its definition --------------------------------------------------

def _draw(data, anchors: int, classes: int):
    centre = data.draw(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=anchors, max_size=anchors))
    size = data.draw(st.lists(st.tuples(st.integers(2, 20), st.integers(2, 20)), min_size=anchors, max_size=anchors))
    scores = data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.2, 0.3, 0.31, 0.5, 0.7, 0.9]), min_size=classes, max_size=classes),
                                min_size=anchors, max_size=anchors))
    boxes = torch.tensor([[*c, *s] for c, s in zip(centre, size)], dtype=torch.float32)[None]
    return boxes, torch.tensor(scores, dtype=torch.float32)[None]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), limit=st.integers(1, 12), agnostic=st.booleans())
def test_efficient_nms_keeps_what_its_definition_keeps(data, limit, agnostic):
    """Output order, threshold, suppression (IoU >= threshold within a class), completeness (every candidate not
    kept is suppressed by a kept one) and padding, on boxes on an integer grid (exact IoU ties happen)."""
    cfg = EfficientNmsConfig(max_output_boxes=limit, class_agnostic=int(agnostic))
    boxes, scores = _draw(data, anchors=12, classes=3)
    count, kept_boxes, kept_scores, kept_classes = efficient_nms(boxes, scores, cfg)
    n = int(count[0, 0])
    assert count.dtype == kept_classes.dtype == torch.int32 and kept_boxes.shape == (1, limit, 4)
    assert torch.all(kept_scores[0, n:] == 0) and torch.all(kept_boxes[0, n:] == 0) and torch.all(kept_classes[0, n:] == 0)
    s, c, b = kept_scores[0, :n], kept_classes[0, :n].long(), kept_boxes[0, :n]
    assert torch.all(s[:-1] >= s[1:]) and torch.all(s >= cfg.score_threshold)
    same = torch.ones(n, n, dtype=torch.bool) if agnostic else c[:, None] == c[None]
    overlap = box_iou(b, b)
    assert not torch.any((overlap >= cfg.iou_threshold) & same & ~torch.eye(n, dtype=torch.bool))
    if n < limit:  # nothing cut by the cap: every candidate is kept or suppressed by a kept box of its class
        corners = torch.cat([boxes[0, :, :2] - boxes[0, :, 2:] / 2, boxes[0, :, :2] + boxes[0, :, 2:] / 2], 1)
        for anchor, label in torch.nonzero(scores[0] >= cfg.score_threshold).tolist():
            box, score = corners[anchor], scores[0, anchor, label]
            if any(torch.equal(box, b[i]) and c[i] == label and s[i] == score for i in range(n)):
                continue
            rivals = (s >= score) & ((c == label) if not agnostic else torch.ones(n, dtype=torch.bool))
            assert torch.any(rivals & (box_iou(box[None], b)[0] >= cfg.iou_threshold)), (anchor, label)


def test_efficient_nms_suppresses_at_exactly_the_threshold():
    """TensorRT's kernel drops a box whose IoU equals the threshold (>=), where mmcv's nms keeps it (>)."""
    cfg = EfficientNmsConfig(iou_threshold=0.5)
    # corners [0, 0, 2, 2] and [0, 0, 4, 2]: IoU 4 / 8 = 0.5 exactly; the third box is far from both
    boxes = torch.tensor([[[1.0, 1.0, 2.0, 2.0], [2.0, 1.0, 4.0, 2.0], [20.0, 20.0, 2.0, 2.0]]])
    scores = torch.tensor([[[0.9], [0.8], [0.7]]])
    count, kept_boxes, kept_scores, _ = efficient_nms(boxes, scores, cfg)
    assert int(count) == 2 and kept_scores[0, :2].tolist() == pytest.approx([0.9, 0.7])
    assert kept_boxes[0, 0].tolist() == [0.0, 0.0, 2.0, 2.0]  # corners out, whatever the coding in
    corners = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 2.0], [19.0, 19.0, 21.0, 21.0]])
    assert len(greedy_nms(corners, 0.5)) == 3  # mmcv's rule keeps the tie


def test_efficient_nms_keeps_classes_apart_unless_agnostic():
    boxes = torch.tensor([[[5.0, 5.0, 4.0, 4.0], [5.0, 5.0, 4.0, 4.0]]])
    scores = torch.tensor([[[0.9, 0.0], [0.0, 0.8]]])  # the same box, once per class
    assert int(efficient_nms(boxes, scores, EfficientNmsConfig())[0]) == 2
    assert int(efficient_nms(boxes, scores, EfficientNmsConfig(class_agnostic=1))[0]) == 1


def test_yolox_tiny_nms_runs_as_a_plugin_spec(run_awml):
    """The whole spec through the plugin: the graph before the plugin verified in ONNX Runtime, the deployed graph
    exported and checked, every backend without EfficientNMS_TRT skipped with its reason."""
    run = run_awml("--awml-spec=yolox-tiny-nms", "--awml-backends=pytorch,onnxruntime,tensorrt-rtx", "-rs")
    # passed: 2 exports, yolox_decoded's ONNX Runtime parity, 2 PyTorch + 1 ONNX Runtime latencies, the RTX
    # engine of yolox_decoded; skipped: golden (no folder), engines that cannot run on a CPU, and the plugin graph
    # on every backend but PyTorch
    rtx = rtx_unavailable() is None  # where TensorRT-RTX imports, yolox_decoded's engine is built (a pass, not a skip)
    run.result.assert_outcomes(passed=6 + rtx, skipped=10 - rtx, deselected=0)  # kinds with no case here (test_int8_sensitivity without --awml-int8-sensitivity) are not collected
    assert run.text.count("onnxruntime has no kernel for the TensorRT plugin op(s) EfficientNMS_TRT") == 2  # parity, latency
    if rtx_unavailable() is None:
        assert "has no EfficientNMS_TRT plugin (its registry holds MyelinWeightsTransformPlugin" in run.text
    parity = [(r["component"], r["output"], r["passed"]) for r in run.report["parity"]]
    assert parity == [("yolox_decoded", "boxes", True), ("yolox_decoded", "scores", True)]
    exported = {(a["component"], a["format"]) for a in run.report["artifacts"]}
    assert {("yolox_nms", "onnx"), ("yolox_decoded", "onnx")} <= exported


@pytest.mark.upstream
def test_awmls_graph_surgery_live_gives_the_committed_recording(tmp_path):
    """Opt-in (``pytest -m upstream`` with ``$AWML_ROOT``): AWML's add_efficientnms_trt run again must give the
    committed recording, and this project's export must still match it."""
    import importlib.util
    import os

    root = Path(os.environ.get("AWML_ROOT", "/nonexistent"))
    if not (root / "tools" / "detection2d" / "deploy_yolox.py").is_file():
        pytest.skip("$AWML_ROOT does not name an AWML checkout (tools/detection2d/deploy_yolox.py)")
    pytest.importorskip("onnx_graphsurgeon", reason="onnx-graphsurgeon is not installed (pip install -e '.[upstream]')")
    spec = importlib.util.spec_from_file_location("record_awml_nms", Path(__file__).parents[1] / "tools" / "record_awml_nms.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    live, problems = tool.record(root, tmp_path, awml_commit="live")
    committed = Recording.load(RECORDED, NAME)
    assert problems == []
    for key in ("node", "outputs", "opset", "deploy_defaults", "images_sha256", "weights_sha256"):
        assert live.meta[key] == committed.meta[key], key
    for name in ("boxes", "scores"):
        np.testing.assert_allclose(live.arrays[name], committed.arrays[name], atol=1e-5 * max(1.0, float(np.abs(committed.arrays[name]).max())))
