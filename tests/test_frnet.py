"""AWML's FRNet (model_specs/frnet): configs read as the specs, AWML's deploy config read and applied, AWML's
pre-processing, consistent shape-test feeds, and a tiny spec's export and per-point parity through the plugin.
The proof against AWML's own model and transforms on mmdet3d is tests/test_upstream_recorded.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.frnet.config import FULL, TINY
from model_specs.frnet.data import UNSCORED, group, interpolate, lidar_scan
from model_specs.frnet.metric import miou
from model_specs.frnet.mmconfig import to_frnet
from model_specs.frnet.spec import SPEC, TINY_SPEC
from model_specs.mmconfig import read_config
from pytest_awml import deploy_apply, deploy_config
from pytest_awml.errors import SpecError
from pytest_awml.spec import validate

CONFIGS = Path(__file__).parent / "data" / "configs"
OT128 = CONFIGS / "awml" / "frnet_t4dataset_ot128.py"  # project-written, AWML 7a6ec07's structure and values


def test_the_awml_structured_configs_read_as_the_specs():
    assert to_frnet(read_config(OT128), FULL) == FULL == SPEC.params["model"]
    assert to_frnet(read_config(CONFIGS / "awml" / "frnet_tiny.py"), TINY) == TINY == TINY_SPEC.params["model"]  # the profile is the base's


@pytest.mark.parametrize("changes, words", [
    (dict(backbone=dict(act_cfg=dict(type="ReLU"))), "backbone.act_cfg: not supported"),
    (dict(backbone=dict(depth=50)), "depth 50"),
    (dict(backbone=dict(output_shape=(64, 1024))), r"backbone.output_shape is \[64, 1024\], but data_preprocessor \(H, W\) makes it \[128, 1024\]"),
    (dict(decode_head=dict(in_channels=64)), "decode_head.in_channels is 64"),
    (dict(voxel_encoder=dict(feat_channel=(1,))), "voxel_encoder.feat_channel: not read by this spec"),
])
def test_unimplemented_models_are_refused_by_name(changes, words):
    with pytest.raises(SpecError, match=words):
        to_frnet(read_config(OT128).with_model(**changes), FULL)


def test_awml_s_deploy_config_reads_and_drives_the_four_dynamic_inputs():
    deploy = deploy_config.read(CONFIGS / "awml" / "deploy_frnet_dynamic.py")
    assert deploy.opset == 16 and deploy.constant_folding is True
    assert ("num_classes", "not applicable") in {(f, r) for f, r, _ in deploy.fields}
    spec = validate(deploy_apply.apply(SPEC, deploy))
    points, cells = spec.components[0].inputs[0].shape[0], spec.components[0].inputs[2].shape[0]
    assert (points.name, points.min, points.opt, points.max) == ("num_points", 5000, 60000, 160000)
    assert (cells.name, cells.min, cells.opt, cells.max) == ("num_unique_coors", 3000, 30000, 60000)
    assert spec.components[0].outputs[0].shape[0] == points


def _awml_interpolation_walk(points: np.ndarray, image: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """AWML's RangeInterpolation loop, pixel by pixel with its running mask: the oracle for the vectorised version."""
    valid, added = valid.copy(), []
    for y in range(valid.shape[0]):
        for x in range(1, valid.shape[1] - 1):
            if not valid[y, x] and valid[y, x - 1] and valid[y, x + 1]:
                valid[y, x] = True
                added.append((image[y, x - 1] + image[y, x + 1]) / 2)
    return added


def test_range_interpolation_fills_what_awml_s_pixel_walk_fills_in_its_order():
    from model_specs.frnet.data import _projection

    scan = lidar_scan(3, TINY, 400)
    y, x = _projection(scan.points, TINY.lidar_h, TINY.range_w, TINY)
    image = np.full((TINY.lidar_h, TINY.range_w, 4), -1, np.float32)
    index = np.full((TINY.lidar_h, TINY.range_w), -1, np.int64)
    order = np.argsort(np.linalg.norm(scan.points[:, :3], 2, axis=1))[::-1]
    index[y[order], x[order]] = order
    image[y[order], x[order]] = scan.points[order]
    expected = _awml_interpolation_walk(scan.points, image, index > 0)
    got = interpolate(scan.points, TINY)
    assert len(expected) > 100 and np.array_equal(got[len(scan.points):], np.array(expected))
    assert np.array_equal(got[: len(scan.points)], scan.points)


def test_frustum_grouping_gives_unique_sorted_cells_and_each_point_its_cell():
    inputs = group(interpolate(lidar_scan(4, TINY, 400).points, TINY), TINY)
    cells, inverse = inputs["voxel_coors"], inputs["inverse_map"]
    assert torch.equal(cells[inverse], inputs["coors"]) and torch.equal(torch.unique(cells, dim=0), cells)
    assert int(cells[:, 1].max()) < TINY.lidar_h and int(cells[:, 2].max()) < TINY.frustum_w


@pytest.mark.parametrize("sizes", [{"num_points": 500, "num_unique_coors": 4000}, {"num_points": 16000, "num_unique_coors": 300}])
def test_shape_feeds_are_inputs_of_the_graph(sizes):
    feed = TINY_SPEC.components[0].make_feed(sizes, 0)
    used = int(feed["inverse_map"].max()) + 1
    assert used == min(sizes.values()) and set(np.unique(feed["inverse_map"])) == set(range(used))
    assert np.array_equal(feed["voxel_coors"][feed["inverse_map"]], feed["coors"]) and len(np.unique(feed["voxel_coors"], axis=0)) == len(feed["voxel_coors"])


def test_miou_through_scikit_learn():
    scan = lidar_scan(5, TINY, 400)
    perfect = miou([(None, scan.labels)], [scan])
    assert perfect.value == 1.0 and perfect.compared == len(scan.labels)
    ground_only = miou([(None, np.zeros_like(scan.labels))], [scan])
    assert ground_only.details["iou.0"] == pytest.approx(float(np.mean(scan.labels == 0))) and ground_only.details["iou.5"] == 0.0


def test_the_tiny_spec_exports_and_judges_per_point_labels(run_awml):
    run = run_awml(f"--awml-spec={TINY_SPEC.name}", "--awml-samples=1", "-k", "test_export or test_parity")
    run.result.assert_outcomes(passed=2)  # the export and the parity of the per-point probabilities
    parity = next(r for r in run.report["parity"] if r["test_id"].startswith("awml::test_parity["))
    assert parity["label_flips"] == 0.0 and parity["max_label_flips"] == 0.001 and parity["label_rows"] > 5000


def _write_labelled_scan(folder: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic scan as a T4 OT128 .bin (x, y, z, intensity, ring) with a SemanticKITTI .label beside it: the low 16
    bits the class, the high 16 an instance id the reader drops; every 10th point labelled ignore_index."""
    scan = lidar_scan(seed, TINY, 400)
    ring = np.arange(len(scan.points), dtype=np.float32)[:, None] % TINY.lidar_h
    np.concatenate([scan.points, ring], axis=1).astype(np.float32).tofile(folder / f"scan{seed}.bin")
    labels = scan.labels.copy()
    labels[::10] = TINY.ignore_index
    (labels.astype("<u4") | (7 << 16)).astype("<u4").tofile(folder / f"scan{seed}.label")
    return scan.points, labels


def test_real_scans_read_with_their_labels_through_the_shared_reader(tmp_path):
    points, labels = _write_labelled_scan(tmp_path, 11)
    np.save(tmp_path / "unlabelled.npy", points[:500])
    scans = TINY_SPEC.load_data(tmp_path, {})
    assert [len(s.points) for s in scans] == [len(points), 500]  # name order: scan11.bin, unlabelled.npy
    assert np.array_equal(scans[0].points, points) and (scans[1].labels == UNSCORED).all()
    assert np.array_equal(scans[0].labels, np.where(labels == TINY.ignore_index, UNSCORED, labels))
    scored = miou([(None, scans[0].labels)], scans[:1])
    assert scored.value == 1.0 and scored.compared == int((labels != TINY.ignore_index).sum())  # ignore_index is not scored
    assert miou([(None, scans[1].labels)], scans[1:]).compared == 0


def test_a_scan_past_the_profile_is_read_and_said(tmp_path):
    from pytest_awml.models import DataWarning

    rng = np.random.default_rng(0)
    np.save(tmp_path / "dense.npy", np.concatenate([rng.normal(0, 20, (20000, 3)), rng.uniform(0, 255, (20000, 1))], axis=1))
    with pytest.warns(DataWarning, match="the profile holds up to 16000 points and 4000 cells"):
        (scan,) = TINY_SPEC.load_data(tmp_path / "dense.npy", {})
    assert len(scan.points) == 20000


def test_the_bundled_weights_segment_the_synthetic_scans():
    """frnet-tiny holds trained weights by default: its mIoU on the spec's own samples is far above what seeded weights
    score (0), so test_metric judges something."""
    assert TINY_SPEC.default_weights.startswith("bundled trained weights weights/frnet-tiny.pt")
    model = TINY_SPEC.build_model(None, 0)
    samples = TINY_SPEC.make_samples(3, 0)
    with torch.no_grad():
        outputs = [(None, model(**group(interpolate(s.points, TINY), TINY))[: len(s.points)].argmax(1).numpy()) for s in samples]
    assert miou(outputs, samples).value > 0.3  # 0.41 with the bundled weights; a constant "ground" scores 0.17


def test_the_tiny_spec_judges_real_labelled_scans(run_awml, tmp_path):
    _write_labelled_scan(tmp_path, 12)
    run = run_awml(f"--awml-spec={TINY_SPEC.name}", f"--awml-data={tmp_path}", "-k", "test_pipeline_parity or test_metric")
    run.result.assert_outcomes(passed=2)
    (metric,) = run.report["metrics"]
    assert metric["metric"] == "mIoU" and metric["reference_value"] > 0.2 and metric["delta"] == 0.0
