"""CenterPoint's pre/post-processing on CUDA is the CPU path moved, not a re-implementation: the same
pillars in the same order (exactly), the same decorated features and boxes within float rounding, and
a pipeline whose every stage stays on the device. Runs only where CUDA is (the GPU machine)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model_specs.centerpoint.decode import decode
from model_specs.centerpoint.spec import SPEC, TINY_SPEC
from model_specs.centerpoint.pipeline import pad_pillars
from model_specs.centerpoint.graphs import HEADROOM, KEPT_GRAPHS, POINTS_STEP, ROWS_HEADROOM, GraphedPreprocess, padded_shape, rows_for
from model_specs.centerpoint.voxelize import PADDING, UploadedSweeps, decorate, densify, frame, scatter, scatter_index, voxelize
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import DataError
from pytest_awml.runners.base import RunnerSource
from pytest_awml.runners.pytorch import PyTorchBackend

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: run on the GPU machine")

SPECS = {"tiny": TINY_SPEC, "full": SPEC}
ROUNDING = {"rtol": 1e-5, "atol": 1e-5}  # float32 arithmetic in another order, nothing more
CUDA = torch.device("cuda")


@pytest.fixture(params=sorted(SPECS), scope="module")
def case(request):
    """(spec, its model with the spec's default weights, one scene)."""
    spec = SPECS[request.param]
    model = spec.build_model(None, 0)
    return spec, model, spec.make_samples(1, 7)[0]


def _pipeline(spec, model, device: Device, precision: Precision):
    """The spec's pipeline on PyTorch runners of ``model`` at ``device`` and ``precision``."""
    target = Target("pytorch", device, precision)
    runners = {c.name: PyTorchBackend().create_runner(RunnerSource(c.name, c.input_names, c.output_names, c.extract(model), artifact=None),
                                                      target).open() for c in spec.components}
    return spec.pipeline.build(model, runners)


def _recording(runner, read) -> list:
    """What ``read(inputs)`` gives at each of ``runner``'s ``run_tensors`` calls from now on."""
    seen, run = [], runner.run_tensors
    runner.run_tensors = lambda inputs: (seen.append(read(inputs)), run(inputs))[1]
    return seen


def _same_as_eager(replayed, voxels, cfg) -> None:
    """A replay's buffers are the eager voxels' rows (coors and raw points bit for bit, decorated within rounding),
    then padding: zero features and PADDING coors; its count, read back, is theirs."""
    count = voxels.coors.shape[0]
    assert replayed.voxels == count <= replayed.capacity and replayed.features.shape[0] == replayed.capacity
    assert torch.equal(replayed.coors[:count], voxels.coors) and (replayed.coors[count:] == PADDING).all()
    assert torch.equal(replayed.features[:count, :, : voxels.features.shape[2]], voxels.features)  # the raw points, copied
    torch.testing.assert_close(replayed.features[:count], decorate(voxels, cfg), **ROUNDING)
    assert not replayed.features[count:].any()
    channels, (nx, ny, _) = cfg.pfn_channels[-1], cfg.grid_size
    assert torch.equal(replayed.index[:count], scatter_index(voxels.coors, channels, cfg)) and (replayed.index[count:] == channels * nx * ny).all()


def test_densify_on_cuda_is_the_cpu_cloud(case):
    _, model, scene = case
    cfg = model.cfg
    host, device = densify(scene.sweeps, cfg), densify(scene.sweeps, cfg, CUDA)
    assert device.device.type == "cuda" and device.shape == host.shape
    torch.testing.assert_close(device.cpu(), host, **ROUNDING)


def test_voxelize_on_cuda_gives_the_same_pillars_in_the_same_order(case):
    _, model, scene = case
    cfg = model.cfg
    points = densify(scene.sweeps, cfg)
    host, device = voxelize(points, cfg), voxelize(points.to(CUDA), cfg)
    assert host.coors.shape[0] > 100
    assert torch.equal(device.coors.cpu(), host.coors) and torch.equal(device.num_points.cpu(), host.num_points)
    assert torch.equal(device.features.cpu(), host.features)  # copies of the same points: bit for bit
    torch.testing.assert_close(decorate(device, cfg).cpu(), decorate(host, cfg), **ROUNDING)


def test_scatter_and_decode_on_cuda_match_the_cpu(case):
    spec, model, scene = case
    cfg = model.cfg
    voxels = voxelize(densify(scene.sweeps, cfg), cfg)
    with torch.inference_mode():
        pillars = model.pts_voxel_encoder(decorate(voxels, cfg))
        canvas = scatter(pillars, voxels.coors, cfg)
        assert torch.equal(scatter(pillars.to(CUDA), voxels.coors.to(CUDA), cfg).cpu(), canvas)
        head = spec.components[1].extract(model)
        heads = dict(zip(("heatmap", "reg", "height", "dim", "rot", "vel"), head(canvas)))
    on_host, on_device = decode(heads, cfg), decode({k: v.to(CUDA) for k, v in heads.items()}, cfg)
    assert len(on_host.boxes) > 0
    np.testing.assert_array_equal(on_device.labels, on_host.labels)
    np.testing.assert_allclose(on_device.boxes, on_host.boxes, **ROUNDING)
    np.testing.assert_allclose(on_device.scores, on_host.scores, **ROUNDING)


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16])
def test_the_pipeline_runs_on_the_device_and_agrees_with_the_cpu(case, precision):
    spec, model, scene = case
    host = _pipeline(spec, model, Device("cpu"), Precision.FP32)(scene)
    device = _pipeline(spec, model, Device("cuda", 0), precision)(scene)
    assert set(device.stages_ms) == set(host.stages_ms) and all(ms > 0 for ms in device.stages_ms.values())
    if precision is Precision.FP32:
        np.testing.assert_array_equal(device.outputs.labels, host.outputs.labels)
        np.testing.assert_allclose(device.outputs.boxes, host.outputs.boxes, rtol=1e-3, atol=1e-3)
    checks = spec.pipeline.compare([host.outputs], [device.outputs], precision)
    assert all(check.passed for check in checks), [c for c in checks if not c.passed]


def test_an_fp16_pipeline_scatters_into_a_half_canvas(case):
    """The encoder's half pillars go into a half canvas: no full-size cast to float32 and back between the networks."""
    spec, model, scene = case
    pipeline = _pipeline(spec, model, Device("cuda", 0), Precision.FP16)
    seen = _recording(pipeline.backbone, lambda inputs: inputs["spatial_features"].dtype)
    pipeline(scene)
    assert seen == [torch.float16]


def test_the_graphed_preprocess_is_the_eager_one_replayed(case):
    """One CUDA graph per padded frame shape: the same pillars as the eager path, bit for bit, then padding; frames of
    other shapes get their own graph (two kept), a repeated frame replays, a stream's past sweep comes from the device."""
    spec, model, _ = case
    cfg = model.cfg
    graphed, uploaded = GraphedPreprocess(cfg), UploadedSweeps()
    scenes = spec.make_samples(3, 21)
    for scene in (*scenes, scenes[0], scenes[0]):
        voxels = voxelize(densify(scene.sweeps, cfg, CUDA), cfg)
        assert voxels.coors.shape[0] > 100
        with graphed(frame(scene.sweeps, cfg, CUDA, uploaded)) as replayed:
            _same_as_eager(replayed, voxels, cfg)
    shapes = [padded_shape(frame(scene.sweeps, cfg, CUDA)) for scene in scenes]
    recent = []  # the shapes in the order last used: the graphs kept are the newest KEPT_GRAPHS
    for shape in (*shapes, shapes[0], shapes[0]):
        recent = [s for s in recent if s != shape] + [shape]
    assert set(graphed._graphs) == set(recent[-KEPT_GRAPHS:])
    # a frame of another point count in the same padded size replays the same graph, with the same pillars as eager
    points = scenes[0].sweeps[0].points
    kept = (len(points) - 1) // POINTS_STEP * POINTS_STEP + 1  # the fewest points that still pad to the same size
    fewer = dataclasses.replace(scenes[0], sweeps=(dataclasses.replace(scenes[0].sweeps[0], points=points[:kept]), *scenes[0].sweeps[1:]))
    assert padded_shape(frame(fewer.sweeps, cfg, CUDA)) == shapes[0]
    held = set(graphed._graphs)
    with graphed(frame(fewer.sweeps, cfg, CUDA, uploaded)) as replayed:
        _same_as_eager(replayed, voxelize(densify(fewer.sweeps, cfg, CUDA), cfg), cfg)
        assert set(graphed._graphs) == held
    later = dataclasses.replace(scenes[1], sweeps=(scenes[1].sweeps[0], scenes[0].sweeps[0]))  # frame 2 after frame 1
    with graphed(frame(scenes[0].sweeps, cfg, CUDA, uploaded)):
        pass
    with graphed(frame(later.sweeps, cfg, CUDA, uploaded)) as replayed:
        _same_as_eager(replayed, voxelize(densify(later.sweeps, cfg, CUDA), cfg), cfg)


def test_a_padded_graph_writes_the_encoder_input_in_place(case):
    """With ``pad_to`` the replay's pillars are the first rows of the encoder's fixed input, zeros after them: what
    padding a copy gave (``pad_pillars``), frame after frame (the rows past the capacity are never written)."""
    spec, model, _ = case
    cfg = model.cfg
    graphed, plain = GraphedPreprocess(cfg, pad_to=cfg.max_voxels), GraphedPreprocess(cfg)
    for scene in spec.make_samples(2, 5):
        inputs = frame(scene.sweeps, cfg, CUDA)
        with plain(inputs) as replayed:
            expected = pad_pillars(replayed.features[: replayed.voxels], cfg.max_voxels)
            assert replayed.padded is None
        with graphed(inputs) as replayed:
            assert replayed.padded.shape[0] == cfg.max_voxels and torch.equal(replayed.padded, expected)
            assert replayed.features.data_ptr() == replayed.padded.data_ptr()


def _thinned(scene, share: float = 0.9):
    """The same number of points, ``share`` of each sweep's (spread over it) moved onto one spot: fewer voxels, the
    same padded shape."""
    def thin(sweep):
        points = sweep.points.copy()
        points[np.arange(len(points)) % 20 < share * 20, :3] = points[-1, :3]
        return dataclasses.replace(sweep, points=points)

    return dataclasses.replace(scene, sweeps=tuple(thin(sweep) for sweep in scene.sweeps))


def test_a_frame_with_more_voxels_than_its_graph_holds_is_captured_again(case):
    """A graph has room for its first frame's voxels plus a margin; a denser frame of the same shape is seen not to
    fit when its count is read back, drops the graph, and gets a new one with room for it."""
    spec, model, scene = case
    cfg = model.cfg
    graphed = GraphedPreprocess(cfg)
    with graphed(frame(_thinned(scene).sweeps, cfg, CUDA)) as replayed:
        room = replayed.capacity
        assert replayed.voxels < room
    voxels = voxelize(densify(scene.sweeps, cfg, CUDA), cfg)
    assert voxels.coors.shape[0] > room  # the same shape, more voxels than that room
    with graphed(frame(scene.sweeps, cfg, CUDA)) as replayed:
        assert replayed.voxels == voxels.coors.shape[0] > room
        assert torch.equal(replayed.coors, voxels.coors[:room])  # the voxels that had a row are the first ones
    assert not graphed._graphs
    with graphed(frame(scene.sweeps, cfg, CUDA)) as replayed:
        _same_as_eager(replayed, voxels, cfg)


@pytest.mark.parametrize("synchronous", [False, True], ids=["torch-stream", "synchronous-encoder"])
def test_a_pipeline_runs_a_frame_that_overflowed_its_graph_again(case, synchronous):
    """The pipeline learns of an overflow after the boxes (the count is never waited for before) or, with a
    synchronous encoder, before the encoder (the count is read there): it runs the frame again with a graph that has
    room, and returns what a pipeline that never overflowed returns."""
    spec, model, scene = case
    pipeline = _pipeline(spec, model, Device("cuda", 0), Precision.FP32)
    encoded = _recording(pipeline.encoder, lambda inputs: inputs["input_features"].shape[0])
    if synchronous:
        pipeline.encoder.cuda_stream = lambda: None
    pipeline(_thinned(scene))
    calls, run, encoded[:] = [], pipeline._run, []
    pipeline._run = lambda *args: calls.append(run(*args)) or calls[-1]
    overflowed = pipeline(scene)
    assert calls[0] is None and calls[1] is overflowed  # the first pass did not fit
    assert len(encoded) == (1 if synchronous else 2)  # a synchronous encoder never ran on the frame that did not fit
    fresh = _pipeline(spec, model, Device("cuda", 0), Precision.FP32)(scene)
    np.testing.assert_array_equal(overflowed.outputs.labels, fresh.outputs.labels)
    np.testing.assert_allclose(overflowed.outputs.boxes, fresh.outputs.boxes, rtol=1e-4, atol=1e-4)


def test_a_frame_with_more_voxels_than_its_encoder_rows_runs_again_on_the_same_graph(case):
    """The encoder gets the rows a frame like the graph's last one needs, not the graph's whole capacity; a denser
    frame that still fits the graph runs again with rows for its own count (no new capture), and returns what a
    pipeline that saw it first returns; a repeated frame runs once."""
    spec, model, scene = case
    cfg = model.cfg
    count = voxelize(densify(scene.sweeps, cfg, CUDA), cfg).coors.shape[0]
    capacity = lambda voxels: rows_for(voxels, HEADROOM, cfg.max_voxels)  # noqa: E731 - a graph captured for them
    sparser = [(share, voxelize(densify(_thinned(scene, share).sweeps, cfg, CUDA), cfg).coors.shape[0]) for share in np.arange(0.1, 0.95, 0.05)]
    share, fewer = next((share, n) for share, n in sparser if rows_for(n, ROWS_HEADROOM, capacity(n)) < count <= capacity(n))
    rows = lambda voxels: rows_for(voxels, ROWS_HEADROOM, capacity(fewer))  # noqa: E731 - what the encoder gets
    pipeline = _pipeline(spec, model, Device("cuda", 0), Precision.FP32)
    encoded = _recording(pipeline.encoder, lambda inputs: inputs["input_features"].shape[0])
    pipeline(_thinned(scene, share))
    graph = next(iter(pipeline.graphed._graphs.values())).graph
    calls, run = [], pipeline._run
    pipeline._run = lambda *args: calls.append(run(*args)) or calls[-1]
    denser, again = pipeline(scene), pipeline(scene)
    assert calls[0] is None and calls[1:] == [denser, again]
    assert encoded == [rows(fewer), rows(fewer), rows(count), rows(count)]
    assert next(iter(pipeline.graphed._graphs.values())).graph is graph  # the same graph, replayed three times
    fresh = _pipeline(spec, model, Device("cuda", 0), Precision.FP32)(scene)
    for got in (denser, again):
        np.testing.assert_array_equal(got.outputs.labels, fresh.outputs.labels)
        np.testing.assert_allclose(got.outputs.boxes, fresh.outputs.boxes, rtol=1e-4, atol=1e-4)


def test_an_encoder_on_a_stream_of_its_own_gets_the_voxels_alone(case):
    """A runtime that waits for torch's work anyway (ONNX Runtime: no torch stream) is given the voxels without the
    graph's padding rows, the count read first; the boxes are those of the encoder that got the padding too."""
    spec, model, scene = case
    padded, alone = (_pipeline(spec, model, Device("cuda", 0), Precision.FP32) for _ in range(2))
    alone.encoder.cuda_stream = lambda: None
    rows = _recording(alone.encoder, lambda inputs: inputs["input_features"].shape[0])
    expected, got = padded(scene).outputs, alone(scene).outputs
    assert rows == [voxelize(densify(scene.sweeps, model.cfg, CUDA), model.cfg).coors.shape[0]]
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_allclose(got.boxes, expected.boxes, rtol=1e-4, atol=1e-4)


def test_no_point_in_range_is_a_clear_error_on_the_device_too(case):
    """On CUDA the voxel count is read after the boxes: a cloud with no voxel still ends in the named error."""
    spec, model, scene = case
    far = dataclasses.replace(scene, sweeps=tuple(dataclasses.replace(s, points=s.points + np.float32(1e4)) for s in scene.sweeps))
    with pytest.raises(DataError, match="no point of the cloud .* lies in the range"):
        _pipeline(spec, model, Device("cuda", 0), Precision.FP32)(far)


def test_the_stages_add_up_to_the_call(case):
    """One CUDA event per stage boundary: the stages cover the call on the device's clock, gaps included (a stage
    starts where the one before it ended), so their sum is the call's span up to the host's first record."""
    spec, model, scene = case
    pipeline = _pipeline(spec, model, Device("cuda", 0), Precision.FP32)
    pipeline(scene)  # capture the pre-processing's graph outside the measured call
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    stages = pipeline(scene).stages_ms
    end.record()
    end.synchronize()
    call = start.elapsed_time(end)
    assert 0.9 * call <= sum(stages.values()) <= call


def test_pipeline_parity_runs_the_path_its_latency_rounds_time(tmp_path):
    """The session's pipeline parity (sharing runners) takes the asynchronous branch the latency rounds time: the
    encoder gets the captured graph's padded rows, as on the bare runners, and the boxes are the bare pipeline's."""
    import toy
    from pytest_awml.artifacts import ArtifactStore
    from pytest_awml import pipeline_outputs
    from pytest_awml.workspace import Workspace

    target = Target("pytorch", Device("cuda", 0), Precision.FP32)
    plan = toy.plan(tmp_path, specs=(TINY_SPEC,), device=Device("cuda", 0), backends=("pytorch",), samples=1)
    workspace = Workspace(plan, ArtifactStore(tmp_path / "artifacts"))
    encoder = workspace.runner(TINY_SPEC, TINY_SPEC.components[0], target)
    rows = _recording(encoder, lambda inputs: inputs["input_features"].shape[0])
    (parity,) = pipeline_outputs.outputs(workspace, TINY_SPEC, target)
    scene = workspace.model(TINY_SPEC).samples[0]
    timed = workspace.pipeline(TINY_SPEC, target)(scene).outputs
    cfg = workspace.model(TINY_SPEC).model.cfg
    count = voxelize(densify(scene.sweeps, cfg, CUDA), cfg).coors.shape[0]
    assert len(rows) == 2 and rows[0] == rows[1] > count  # both padded: the asynchronous branch, twice
    np.testing.assert_array_equal(parity.labels, timed.labels)
    np.testing.assert_array_equal(parity.boxes, timed.boxes)
    workspace.close()
