"""A failed parity test names the first module that diverges: the node → module map, the per-layer judgment on
models that diverge at a known module (an export-time branch, an fp16 overflow, a layer edited in the exported
graph), nothing named when parity passes, and the failure's message, report record and folder end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from pytest_awml.intermediates import graph_tensors, module_calls
from pytest_awml.layer_rule import LayerRule
from pytest_awml.layer_walk import localize
from pytest_awml.limits import Tolerance
from pytest_awml.onnx_scopes import NAME_SCOPES, module_of, node_modules

NET = '''
import numpy as np
import torch
from torch import nn


class ExportOnly(nn.Module):
    """Computes something else while torch.onnx exports it: the exported graph diverges here."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor if torch.onnx.is_in_onnx_export() else x


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return (x * self.factor) * self.factor  # two constants float16 holds (its converter clamps larger ones)


class Net(nn.Module):
    """Conv-BatchNorm-ReLU stages (the exporter folds each BatchNorm into its Conv), one of them with a branch."""

    def __init__(self, branch: float = 1.0, big: float = 1.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), ExportOnly(branch), nn.ReLU()),
        ])
        self.up = Scale(big)
        self.down = Scale(1.0 / big)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.down(self.up(x)))


def build(branch: float = 1.0, big: float = 1.0) -> Net:
    torch.manual_seed(0)
    net = Net(branch, big).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net
'''

SPEC = NET + '''

from pytest_awml.spec import Component, Dim, ModelSpec, TensorSpec, Tolerance

BRANCH = {branch}
SIDE = Dim("side", 8, 16, 24)  # shape fuzzing draws heights


def make_samples(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(count)]


SPEC = ModelSpec(
    name="branchy",
    build_model=lambda checkpoint, seed: build(BRANCH),
    make_samples=make_samples,
    components=(Component("net", lambda m: m, lambda m, s: {{"x": torch.from_numpy(s)}}, (TensorSpec("x", (1, 3, SIDE, 16)),),
                          (TensorSpec("y", (1, 2, SIDE, 16)),), {{"fp32": {{"*": Tolerance(1e-4, 1e-4)}}}}),),
)
'''


@pytest.fixture(scope="module")
def net_module():
    namespace: dict = {}
    exec(compile(NET, "net", "exec"), namespace)  # the same source the spec files below are written from
    return namespace


def _export(model: nn.Module, x: np.ndarray, path) -> None:
    torch.onnx.export(model, (torch.from_numpy(x),), str(path), input_names=["x"], output_names=["y"], dynamo=False)


TOL = Tolerance(1e-4, 1e-4)


def _localize(model: nn.Module, x: np.ndarray, path, tol: Tolerance = TOL):
    """As a failed parity test localizes: the graph run in segments spilled to disk, the reference judged in its hooks."""
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    spill = path.with_suffix(".spill")
    spill.mkdir()
    graph, values = graph_tensors(path, {"x": x}, spill)
    return localize(model, [x], graph.graph, values, LayerRule.of({"y": tol}, {"y": reference}), graph_format="onnx", sample=0)


SAMPLE = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)


def test_torchscript_scope_names_map_to_named_modules(net_module, tmp_path):
    model = net_module["build"]()
    _export(model, SAMPLE, tmp_path / "net.onnx")
    names = {name for name, _ in model.named_modules()}
    mapped = node_modules(onnx.load(str(tmp_path / "net.onnx")).graph, names)
    assert mapped["/blocks.1/blocks.1.0/Conv"] == "blocks.1.0"  # an element of a ModuleList's Sequential
    assert mapped["/stem/stem.0/Conv"] == "stem.0" and mapped["/head/Conv"] == "head" and mapped["/up/Mul"] == "up"
    assert set(mapped.values()) <= names
    # without the names the indexed reading is taken; an attribute that happens to repeat a segment is found by name
    assert module_of(helper.make_node("Relu", ["a"], ["b"], name="/backbone/blocks.0/blocks.0.1/Relu")) == "backbone.blocks.0.1"
    nested = helper.make_node("Relu", ["a"], ["b"], name="/a/layers.0/layers/layers.1/Relu")
    assert module_of(nested, {"a", "a.layers", "a.layers.0", "a.layers.0.layers", "a.layers.0.layers.1"}) == "a.layers.0.layers.1"
    assert module_of(helper.make_node("Relu", ["a"], ["b"], name="Relu_3")) is None  # unscoped: no module recorded
    assert module_of(helper.make_node("Relu", ["a"], ["b"], name="/nowhere/Relu"), names) is None
    assert module_of(helper.make_node("Relu", ["a"], ["b"], name="/Mul")) == ""  # the exported module itself


def test_dynamo_name_scopes_map_to_the_deepest_module():
    node = helper.make_node("Conv", ["a"], ["b"], name="node_conv2d_3")
    entry = node.metadata_props.add()
    entry.key, entry.value = NAME_SCOPES, repr(["", "pts_backbone", "pts_backbone.blocks.1", "pts_backbone.blocks.1.3@1", "conv2d_3"])
    assert module_of(node) == "pts_backbone.blocks.1.3"
    assert module_of(node, {"", "pts_backbone"}) is None
    root = helper.make_node("Add", ["a"], ["b"], name="node_add")
    entry = root.metadata_props.add()
    entry.key, entry.value = NAME_SCOPES, repr(["", "add"])
    assert module_of(root) == ""


def test_an_export_time_branch_is_named_and_a_faithful_export_names_nothing(net_module, tmp_path):
    faithful = net_module["build"]()
    _export(faithful, SAMPLE, tmp_path / "same.onnx")
    found = _localize(faithful, SAMPLE, tmp_path / "same.onnx")
    assert found.first is None and all(row.within is not False for row in found.rows)
    assert any(row.folded == "stem.1" for row in found.rows)  # BatchNorm folded into the Conv before it: not a divergence

    branchy = net_module["build"](branch=1.5)
    _export(branchy, SAMPLE, tmp_path / "branch.onnx")
    first = _localize(branchy, SAMPLE, tmp_path / "branch.onnx").first
    assert first is not None and first.module == "blocks.1.1" and first.op == "Mul"
    assert first.onnx_nodes[-1] == "/blocks.1/blocks.1.1/Mul" and first.input_max_abs is not None and first.input_max_abs < 1e-5
    assert first.max_abs > 0.1 and first.line().startswith("first divergence: blocks.1.1 (Mul /blocks.1/blocks.1.1/Mul): max abs")


def test_the_graph_run_in_segments_gives_every_tensor_of_one_run(net_module, tmp_path, monkeypatch):
    """Spilled, the graph runs a few nodes per session, each fed what it reads from the segments before (constants
    and weights carried along): every tensor ONNX Runtime gives with all of them marked at once, and the same values."""
    from pytest_awml import intermediates

    _export(net_module["build"](), SAMPLE, tmp_path / "net.onnx")
    _, whole = graph_tensors(tmp_path / "net.onnx", {"x": SAMPLE})
    monkeypatch.setattr(intermediates, "SEGMENT", 3)
    _, spilled = graph_tensors(tmp_path / "net.onnx", {"x": SAMPLE}, tmp_path)
    assert sorted(spilled) == sorted(whole) and len(whole) > 3 * intermediates.SEGMENT
    for name, value in whole.items():
        np.testing.assert_array_equal(spilled[name], value, err_msg=name)


def test_a_scalar_between_segments_stays_a_scalar(tmp_path, monkeypatch):
    """A 0-d tensor spilled at a segment's end (Gather of a Shape) is fed to the next segment as 0-d: made 1-d, the
    Unsqueeze after it gave rank 2 and the Concat failed (the full-size FRNet and StreamPETR localizations)."""
    from pytest_awml import intermediates

    nodes = [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]), helper.make_node("Concat", ["n1", "n1"], ["y"], axis=0)]
    graph = helper.make_graph(nodes, "scalar", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [2])],
                              [helper.make_tensor("zero", onnx.TensorProto.INT64, [], [0]),
                               helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [0])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "scalar.onnx")
    monkeypatch.setattr(intermediates, "SEGMENT", 2)  # the scalar n crosses from the first segment into the second
    _, spilled = graph_tensors(tmp_path / "scalar.onnx", {"x": np.zeros((3, 2), np.float32)}, tmp_path)
    assert np.shape(spilled["n"]) == () and spilled["y"].tolist() == [3, 3]


def test_each_pair_is_judged_once_however_deep_the_modules_nest(net_module, tmp_path, monkeypatch):
    """A module's output is its last child's and its input its first child's: each (reference tensor, graph tensor)
    pair is compared once, so wrapping the model in containers adds rows and no comparison (a full-size backbone's
    localization took minutes when every container compared its children's tensors again)."""
    from pytest_awml import layer_rule

    compared: list[tuple[str, str]] = []
    judge = layer_rule.LayerRule.judge

    def counted(rule, ref, test):  # a pair: the reference's values and the graph tensor's file (the input: in memory)
        compared.append((hashlib.sha1(np.ascontiguousarray(ref).tobytes()).hexdigest(), str(getattr(test, "filename", "input"))))
        return judge(rule, ref, test)

    monkeypatch.setattr(layer_rule.LayerRule, "judge", counted)
    flat = net_module["build"]()
    _export(flat, SAMPLE, tmp_path / "flat.onnx")
    found = _localize(flat, SAMPLE, tmp_path / "flat.onnx")
    asked = sum(1 for r in found.rows if r.onnx_outputs) + sum(1 for r in found.rows if r.input_max_abs is not None)
    assert len(compared) == len(set(compared)) == found.comparisons < asked
    once = len(compared)
    compared.clear()
    nested = nn.Sequential(nn.Sequential(net_module["build"]())).eval()
    _export(nested, SAMPLE, tmp_path / "nested.onnx")
    deeper = _localize(nested, SAMPLE, tmp_path / "nested.onnx")
    assert len(deeper.rows) == len(found.rows) + 2 and deeper.first is None
    assert len(compared) == len(set(compared)) == once


def test_a_layer_edited_in_the_exported_graph_is_named(net_module, tmp_path):
    model = net_module["build"]()
    _export(model, SAMPLE, tmp_path / "net.onnx")
    graph = onnx.load(str(tmp_path / "net.onnx"))
    conv = next(n for n in graph.graph.node if n.name == "/blocks.0/blocks.0.0/Conv")
    weight = next(i for i in graph.graph.initializer if i.name == conv.input[1])
    values = onnx.numpy_helper.to_array(weight).copy()
    values[0, 0, 1, 1] += 0.5  # one weight of one layer, as a broken graph edit would
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(graph, str(tmp_path / "edited.onnx"))
    found = _localize(model, SAMPLE, tmp_path / "edited.onnx")
    first = found.first
    assert first is not None and first.module == "blocks.0.0" and first.onnx_nodes == ("/blocks.0/blocks.0.0/Conv",)
    # the Conv's graph tensor is its BatchNorm's output (folded): out of tolerance against both, it is judged and
    # replayed against the nearer, the BatchNorm's, not reported as the whole BatchNorm transform
    row = next(r for r in found.rows if r.module == "blocks.0.0")
    assert row.folded == "blocks.0.1" and row.within is False and row.max_abs == first.max_abs
    with torch.no_grad():
        folded = model.blocks[0][1](model.blocks[0][0](model.stem(torch.from_numpy(SAMPLE)))).numpy()
    np.testing.assert_array_equal(found.replay[first.onnx_tensor], folded)


def test_an_fp16_overflow_is_named_where_it_overflows(net_module, tmp_path):
    from onnxconverter_common import float16

    model = net_module["build"](big=1e3)  # x * 1e3 * 1e3 leaves float16's range (65504); the next module scales it back
    _export(model, SAMPLE, tmp_path / "net.onnx")
    half = float16.convert_float_to_float16(onnx.load(str(tmp_path / "net.onnx")), keep_io_types=True)
    onnx.save(half, str(tmp_path / "net.fp16.onnx"))
    found = _localize(model, SAMPLE, tmp_path / "net.fp16.onnx", Tolerance(1e-2, 1e-2))
    assert found.first is not None and found.first.module == "up" and found.first.nonfinite > 0
    assert "non-finite element(s)" in found.first.line()


SHORT = ("-k", "test_parity or test_shapes", "--awml-samples=2", "--awml-hypothesis-profile=ci")


def test_a_failed_parity_test_names_its_first_divergence(run_awml, pytester):
    pytester.makepyfile(branchy=SPEC.format(branch=1.5))
    run = run_awml("--awml-spec=branchy.py", *SHORT)
    run.result.assert_outcomes(failed=2)
    # parity, shapes (>=: where $CI is set, pytest repeats each failure's message untruncated in its short summary)
    assert run.text.count("first divergence: blocks.1.1 (Mul /blocks.1/blocks.1.1/Mul): max abs") >= 2
    assert run.report["shapes"][0]["tried"][0]["first_divergence"]["module"] == "blocks.1.1"
    record = run.report["parity"][0]
    assert list(record)[-1] == "first_divergence" and record["first_divergence"]["module"] == "blocks.1.1"
    assert record["first_divergence"]["onnx_nodes"][-1] == "/blocks.1/blocks.1.1/Mul"
    assert record["first_divergence"]["max_abs"] > 0.1 and record["first_divergence"]["input_max_abs"] < 1e-5
    folder = pytester.path / ".awml" / "artifacts" / "failures" / "test_parity_branchy_net_onnxruntime-cpu-fp32"
    table = json.loads((folder / "layers.json").read_text())
    assert table["first_divergence"]["module"] == "blocks.1.1" and len(table["layers"]) == 16  # every module call (the ModuleList is never called)
    assert "`blocks.1.1` **<- first divergence**" in (folder / "layers.md").read_text()
    replay = subprocess.run(["bash", str(folder / "reproduce.sh"), "--layer"], capture_output=True, text=True, timeout=300)
    assert replay.returncode != 0 and "FAILED | Output: '/blocks.1/blocks.1.1/Mul_output_0'" in replay.stdout + replay.stderr
    # the layer before it replays within tolerance: the replay tells the layers apart
    inside = subprocess.run(["bash", str(folder / "reproduce.sh"), "--layer", "/blocks.1/blocks.1.0/Conv_output_0"],
                            capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stdout[-2000:]

    opted_out = run_awml("--awml-spec=branchy.py", *SHORT, "--awml-no-localize")
    opted_out.result.assert_outcomes(failed=2)
    assert opted_out.text.count("first divergence: not localized (--awml-no-localize)") >= 2
    assert "first_divergence" not in opted_out.report["parity"][0] and not (folder / "layers.json").exists()

    pytester.makepyfile(branchy=SPEC.format(branch=1.0))
    passing = run_awml("--awml-spec=branchy.py", *SHORT)
    passing.result.assert_outcomes(passed=2)
    assert "first divergence" not in passing.text and all("first_divergence" not in r for r in passing.report["parity"])


def test_engine_layers_name_their_onnx_nodes_and_modules(net_module, tmp_path):
    """On this CPU the RTX runtime cannot load the engine: the network's layers are listed (said in ``source``); a
    fused layer of the inspector's list (by its metadata or its ``A + B`` name) names every node and module in it."""
    from exporters.signature import TensorSpec
    from exporters.tensorrt_build import TENSORRT_RTX, EngineOptions, _nodes_of, build_engine
    from pytest_awml.builders.tensorrt import engine_layer_modules

    if TENSORRT_RTX.unavailable():
        pytest.skip(TENSORRT_RTX.unavailable())
    _export(net_module["build"](), SAMPLE, tmp_path / "net.onnx")
    report = build_engine(tmp_path / "net.onnx", tmp_path / "net.engine", flavor=TENSORRT_RTX, component="net",
                          inputs=(TensorSpec("x", (1, 3, 16, 16)),), options=EngineOptions())
    mapped = engine_layer_modules(report.layers, tmp_path / "net.onnx")
    assert mapped["source"].startswith(("engine inspector", "network"))
    by_layer = {entry["layer"]: entry for entry in mapped["layers"]}
    assert by_layer["/blocks.1/blocks.1.0/Conv"]["modules"] == ["blocks.1.0"]
    nodes = ["/blocks.1/blocks.1.0/Conv", "/blocks.1/blocks.1.2/Relu", "/head/Conv"]
    assert _nodes_of("/blocks.1/blocks.1.0/Conv + /blocks.1/blocks.1.2/Relu", "", nodes) == tuple(nodes[:2])
    assert _nodes_of("fused_0", "[ONNX Layer: /head/Conv]\x1f[ONNX Layer: /blocks.1/blocks.1.2/Relu]", nodes) == (nodes[2], nodes[1])


def test_drift_is_localized_on_the_golden_layers(net_module, tmp_path):
    """The golden model's probed layers against today's: a weight changed since is named at its module; an unchanged
    model names nothing; a model whose calls changed is named where they part."""
    from pytest_awml import golden_layers
    from pytest_awml.divergence import compare_calls

    golden = net_module["build"]()
    path = tmp_path / "net.layers.npz"
    golden_layers.write(path, module_calls(golden, [SAMPLE]))
    kept = golden_layers.read(path)
    with torch.no_grad():
        reference = golden(torch.from_numpy(SAMPLE)).numpy()
    rule = LayerRule.of({"y": TOL}, {"y": reference})
    assert compare_calls(kept, golden_layers.probed(module_calls(golden, [SAMPLE])), rule).first is None
    today = net_module["build"]()
    with torch.no_grad():
        today.blocks[1][0].weight[0, 0, 1, 1] += 0.5
    first = compare_calls(kept, golden_layers.probed(module_calls(today, [SAMPLE])), rule).first
    assert first is not None and first.module == "blocks.1.0" and first.input_max_abs == 0.0
    assert first.line().startswith("first divergence: blocks.1.0: max abs")
    today = net_module["build"]()
    today.blocks[1] = nn.Sequential(*today.blocks[1][:2])  # its ReLU removed
    parted = compare_calls(kept, golden_layers.probed(module_calls(today, [SAMPLE])), rule).first
    assert parted is not None and parted.op == "call"
    assert golden_layers.read(tmp_path / "none.layers.npz") is None
