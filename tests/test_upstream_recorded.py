"""AWML's YOLOX-ELAN, calibration classifier and traffic-light classifiers, proven in every CI run against their upstream code's recorded numbers.

``tests/data/upstream/`` holds what mmdet 3.3 (with AWML's own ELANDarknet and YOLOXPAFPN_ELAN) and
mmpretrain 1.2 (with AWML's own CalibrationClassificationTransform) computed (``tools/record_upstream.py``;
see the README there): the models built from AWML-structured configs through ``--awml-config``'s reader,
their weights, the inputs their own pipelines made from synthetic frames, stage outputs and mmdet's
decode. None of that code is needed here: the recorded weights load strictly into this project's
models, this project's pipelines must make the same inputs bit for bit, and every stage must agree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from model_specs.calibration import upstream as calibration
from model_specs.calibration.mmconfig import to_calibration
from model_specs.calibration.model import CalibrationClassifier
from model_specs.calibration.spec import SPEC as CALIBRATION, TINY_SPEC as CALIBRATION_TINY
from model_specs.frnet import upstream as frnet
from model_specs.frnet.mmconfig import to_frnet
from model_specs.frnet.model import FRNet
from model_specs.frnet.spec import SPEC as FRNET, TINY_SPEC as FRNET_TINY
from model_specs.mmconfig import read_config
from model_specs.mobilenetv2 import upstream as mobilenetv2
from model_specs.mobilenetv2.mmconfig import to_classifier
from model_specs.mobilenetv2.model import TrafficLightClassifier
from model_specs.mobilenetv2.spec import CAR_SPEC, CAR_TINY_SPEC, PEDESTRIAN_SPEC
from model_specs.recording import TENSOR_RTOL, Recording, agrees, state_sha256
from model_specs.streampetr import upstream as streampetr
from model_specs.streampetr.head import Petr3D
from model_specs.streampetr.mmconfig import to_streampetr
from model_specs.streampetr.spec import SPEC as STREAMPETR, TINY_SPEC as STREAMPETR_TINY
from model_specs.yolox import upstream as yolox
from model_specs.yolox.mmconfig import to_yolox
from model_specs.yolox.model import YoloxElan
from model_specs.yolox.spec import SPEC as YOLOX, TINY_SPEC as YOLOX_TINY

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs" / "awml"
# recording name: (the peer module, the spec, how a config is read, the model class)
MODELS = {
    "yolox-tiny": (yolox, YOLOX_TINY, to_yolox, YoloxElan),
    "yolox": (yolox, YOLOX, to_yolox, YoloxElan),
    "calibration-tiny": (calibration, CALIBRATION_TINY, to_calibration, CalibrationClassifier),
    "calibration": (calibration, CALIBRATION, to_calibration, CalibrationClassifier),
    "mobilenetv2-car-tiny": (mobilenetv2, CAR_TINY_SPEC, to_classifier, TrafficLightClassifier),
    "mobilenetv2-car": (mobilenetv2, CAR_SPEC, to_classifier, TrafficLightClassifier),
    "mobilenetv2-pedestrian": (mobilenetv2, PEDESTRIAN_SPEC, to_classifier, TrafficLightClassifier),
    "frnet-tiny": (frnet, FRNET_TINY, to_frnet, FRNet),
    "streampetr-tiny": (streampetr, STREAMPETR_TINY, to_streampetr, Petr3D),
    "frnet": (frnet, FRNET, to_frnet, FRNet),
    "streampetr": (streampetr, STREAMPETR, to_streampetr, Petr3D),
}
# comparisons that run a full-size model for minutes on a CI CPU: opt-in (-m full); their strict load stays in every run
SLOW = {"frnet": "FRNet's OT128 model on a 59 446-point scan",
        "streampetr": "StreamPETR's ResNet-50 on five 480 x 640 cameras, two frames"}
VERSIONS = {yolox: ("mmdet", "3.3.0"), calibration: ("mmpretrain", "1.2.0"), mobilenetv2: ("mmpretrain", "1.2.0"), frnet: ("mmdet3d", "1.4.0"),
            streampetr: ("mmdet3d", "1.4.0")}


def _load(name: str):
    module, spec, read, _ = MODELS[name]
    recording = Recording.load(DATA / "upstream", name)
    return recording, read(read_config(CONFIGS / recording.meta["config"]), spec.params["model"])


@pytest.fixture(scope="module", params=list(MODELS))
def loaded(request):
    recording, cfg = _load(request.param)
    return request.param, recording, cfg


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.full) if n in SLOW else n for n in MODELS])
def recorded(request):
    recording, cfg = _load(request.param)
    return request.param, recording, cfg, MODELS[request.param][0].compare(recording, cfg)


def test_the_recorded_config_is_the_spec_s(loaded):
    name, recording, cfg = loaded
    module, spec, _, _ = MODELS[name]
    assert cfg == spec.params["model"]
    package, version = VERSIONS[module]
    assert recording.meta["versions"][package] == version


def test_upstream_weights_load_strictly_with_the_same_keys_and_shapes(loaded):
    name, recording, cfg = loaded
    model_class = MODELS[name][3]
    regenerated = {k for k, _ in recording.meta["state_shapes"]}
    whole = recording.stored_state()  # a tensor stored whole and not regenerated (StreamPETR's frozen constants): its shape is its own
    ours = [(k, tuple(v.shape)) for k, v in model_class(cfg).state_dict().items() if k in regenerated or k not in whole]
    assert ours == [(k, tuple(shape)) for k, shape in recording.meta["state_shapes"]]  # every key, in upstream's order
    state = recording.state_dict()
    assert state_sha256(state) == recording.meta["state_sha256"]  # the weights upstream ran with
    model_class(cfg).load_state_dict(state, strict=True)


def test_every_stage_agrees_with_upstream(recorded):
    """YOLOX: the letterboxed input equals mmdet's test pipeline's, backbone/neck/output within TENSOR_RTOL,
    mmdet's pre-NMS decode (count, labels, boxes, scores). Calibration: the input equals AWML's transform's,
    pre-logits and logits within TENSOR_RTOL, for a calibrated and a miscalibrated frame."""
    _, _, _, result = recorded
    assert result.problems() == []


@pytest.mark.parametrize("change, stage", [
    (dict(head_act="Swish"), "output"),  # mmdet's YOLOXHead default; AWML sets ReLU6 everywhere
    (dict(neck_act="Swish"), "neck/0"),  # YOLOXPAFPN_ELAN's default
    (dict(backbone_norm=(1e-5, 0.03)), "backbone/0"),  # torch's BN eps, not mmdet's YOLOX 1e-3
])
def test_the_yolox_comparison_would_catch_a_wrong_switch(change, stage):
    """Each of these loads strictly (no weight changes shape) and computes something else."""
    recording, cfg = _load("yolox-tiny")
    wrong = yolox.compare(recording, dataclasses.replace(cfg, **change))
    difference = wrong.output if stage == "output" else wrong.features[stage]
    scale = wrong.output_scale if stage == "output" else wrong.feature_scale[stage]
    assert not agrees(difference, scale) and wrong.problems()


@pytest.mark.parametrize("change", [dict(max_depth=80.0), dict(dilation_size=0), dict(norm=(1e-3, 0.1))])
def test_the_calibration_comparison_would_catch_a_wrong_switch(change):
    recording, cfg = _load("calibration-tiny")
    wrong = calibration.compare(recording, dataclasses.replace(cfg, **change))
    assert wrong.problems()
    if "norm" in change:  # the inputs are still AWML's; the network is not
        assert all(wrong.inputs_identical.values()) and any(v > 1e2 * TENSOR_RTOL for v in wrong.logits.values())
    else:
        assert not any(wrong.inputs_identical.values())


@pytest.mark.parametrize("change, inputs_same", [
    (dict(to_rgb=False), False),  # the data_preprocessor's BGR to RGB
    (dict(image_size=56), False),  # Resize's scale
    (dict(mean=(0.0, 0.0, 0.0)), False),
    (dict(norm=(1e-3, 0.1)), True),  # mmcv's BN eps; the inputs are still AWML's, the network is not
])
def test_the_classifier_comparison_would_catch_a_wrong_switch(change, inputs_same):
    recording, cfg = _load("mobilenetv2-car-tiny")
    wrong = mobilenetv2.compare(recording, dataclasses.replace(cfg, **change))
    assert wrong.problems() and wrong.input_identical is inputs_same


@pytest.mark.parametrize("change", [dict(fov_down=-24.0), dict(range_w=256), dict(norm=(1e-5, 0.1)), dict(frustum_w=64)])  # each loads strictly
def test_the_frnet_comparison_would_catch_a_wrong_switch(change):
    recording, cfg = _load("frnet-tiny")
    wrong = frnet.compare(recording, dataclasses.replace(cfg, **change))
    assert wrong.problems()


@pytest.mark.parametrize("name, graphs", [("yolox-tiny", ""), ("calibration-tiny", ""), ("mobilenetv2-car-tiny", " and batch4")])
def test_upstream_weights_in_an_mmengine_checkpoint_run_through_the_plugin(run_awml, pytester, name, graphs):
    """The recorded upstream weights saved as mmengine saves a checkpoint (numpy values and HistoryBuffer-like
    objects beside them), read with --awml-config and --awml-checkpoint: no trust needed, loaded strictly."""
    import numpy as np
    import torch

    recording, cfg = _load(name)
    module, spec, _, model_class = MODELS[name]
    path = pytester.path / "epoch_300.pth"
    torch.save({"meta": {"epoch": 300, "seed": np.int64(42), "dataset_meta": {"classes": list(cfg.classes)}},
                "state_dict": recording.state_dict(), "message_hub": {"runtime_info": {"iter": np.int64(9000)}}}, path)
    run = run_awml(f"--awml-spec={name}", f"--awml-config={CONFIGS / recording.meta['config']}", f"--awml-checkpoint={path}",
                   "-k", f"(test_export or (test_parity and not pipeline)){graphs}")  # one of the classifier's static batches
    run.result.assert_outcomes(passed=2)
    model = model_class(cfg)
    model.load_state_dict(recording.state_dict(), strict=True)
    from pytest_awml.models import state_dict_sha256

    assert {a["weights_sha256"] for a in run.report["artifacts"] if "weights_sha256" in a} == {state_dict_sha256(model)}


# AWML's NMSFreeCoder + get_bboxes against this project's decode on the same recorded head outputs: the same float32 ops
# (torch's sigmoid and top-k, atan2, exp) on the same arrays, measured 0.0; boxes are metres to ~60 (a float32 ulp ~4e-6),
# so another CPU's vector kernels may differ by an ulp. Counts, order and labels exact.
DECODE_ATOL = 1e-5


@pytest.mark.parametrize("name", ["streampetr-tiny", "streampetr"])
def test_the_streampetr_decode_is_awml_s(name):
    """Every recorded frame's boxes, scores and labels as AWML's own coder and head decode them."""
    recording, cfg = _load(name)
    found = streampetr.decode_differences(recording, cfg)
    assert len(found) == 3 * recording.meta["frames"] and all(v <= DECODE_ATOL for v in found.values()), found
    assert len(recording.arrays["frame0/decoded_scores"]) > 0


@pytest.mark.parametrize("change", [{"use_bottom_center": False}, {"score_thres": 0.83}, {"max_num": 50},
                                    {"post_center_range": (-30.0, -30.0, -10.0, 30.0, 30.0, 10.0)},
                                    {"num_query": 24}])  # the last layer's queries misread
def test_the_streampetr_decode_comparison_would_catch_a_wrong_setting(change):
    recording, cfg = _load("streampetr-tiny")
    assert max(streampetr.decode_differences(recording, dataclasses.replace(cfg, **change)).values()) > DECODE_ATOL


@pytest.mark.parametrize("change", [dict(num_heads=4), dict(lid=False), dict(position_range=(-60.0, -60.0, -10.0, 60.0, 60.0, 10.0)),
                                    dict(pc_range=(-50.0, -50.0, -5.0, 50.0, 50.0, 3.0))])  # each loads strictly
def test_the_streampetr_comparison_would_catch_a_wrong_switch(change):
    recording, cfg = _load("streampetr-tiny")
    assert streampetr.compare(recording, dataclasses.replace(cfg, **change)).problems()


@pytest.mark.full
def test_the_full_size_streampetr_comparison_would_catch_a_wrong_switch():
    """The sampled arrays and the whole scores and boxes: a head count that loads strictly and attends otherwise."""
    recording, cfg = _load("streampetr")
    found = streampetr.compare(recording, dataclasses.replace(cfg, num_heads=4)).problems()
    assert any(p.startswith("frame0/outs_dec:") for p in found) and any(p.startswith("stats/frame0/outs_dec:") for p in found), found


def test_a_sampled_streampetr_array_is_held_at_its_positions_and_by_its_statistics():
    """The full-size recording keeps a large array as seeded positions and statistics: a change at a kept position shows
    in the sampled difference, an outlier elsewhere in the statistics (its max |value|); the array itself agrees exactly."""
    value = np.random.default_rng(0).standard_normal((1, streampetr.WHOLE_LIMIT + 1), dtype=np.float32)
    arrays = streampetr.kept("frame0/x", value, 64, seed=1)
    assert arrays["frame0/x"].shape == (64,) and streampetr.kept("frame0/y", value[:, :-1], 64, seed=1).keys() == {"frame0/y"}
    index = arrays["index/frame0/x"]
    assert streampetr._held("frame0/x", value, arrays) == ({"frame0/x": 0.0, "stats/frame0/x": 0.0}, float(np.abs(value).max()))
    elsewhere = np.setdiff1d(np.arange(value.size), index)[0]
    for position, moved, change in ((index[3], "frame0/x", 0.5), (elsewhere, "stats/frame0/x", 100.0)):
        changed = value.copy()
        changed.reshape(-1)[position] += change
        found, scale = streampetr._held("frame0/x", changed, arrays)
        assert not agrees(found[moved], scale), (moved, found)
