"""``--awml-deploy-config``: AWML's deploy configs drive the generated tests, field by field.

The configs under tests/data/configs/awml/deploy_*.py have the structure of AWML's (the deployment framework's
CenterPoint ``deploy_config.py``, and the mmdeploy config of the calibration classifier) with the tiny specs'
sizes. Each test below changes one field and requires the export, the profile, the targets or the test ids to
change as the field says, or the run to refuse the field by name: never "unchanged".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from model_specs.calibration.spec import TINY_SPEC as CALIBRATION_TINY
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml import backends, builders, deploy_apply, deploy_config
from pytest_awml.cases import Plan
from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError, SpecError
from pytest_awml.options import AwmlOptions
from pytest_awml.results import deploy_tolerance
from pytest_awml.spec import Dim, validate

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
CENTERPOINT = CONFIGS / "deploy_centerpoint_tiny.py"
CALIBRATION = CONFIGS / "deploy_calibration_tiny.py"


def _read(tmp_path: Path, base: Path, change: str = "") -> deploy_config.DeployConfig:
    path = tmp_path / base.name
    path.write_text(base.read_text() + "\n" + change)
    return deploy_config.read(path)


def _plan(tmp_path: Path, deploy, spec=TINY_SPEC, device: str = "cpu") -> Plan:
    applied = validate(deploy_apply.apply(spec, deploy))
    options = AwmlOptions(specs=(spec.name,), backends=None, device=Device.parse(device), precisions=(Precision.FP32,),
                          artifacts=tmp_path / "a", checkpoint=None, samples=1, seed=0, report=tmp_path / "r.json", deploy=deploy)
    return Plan.build(options, [applied], backends.builtin(), builders.builtin())


def _ids(plan: Plan, kind: str) -> set[str]:
    return {case.id for case in plan.cases(kind)}


def test_every_field_the_file_sets_is_accounted_for():
    for path, count in ((CENTERPOINT, 40), (CALIBRATION, 14)):
        deploy = deploy_config.read(path)
        roles = {role for _, role, _ in deploy.fields}
        assert roles == {"drives", "not applicable"} and len(deploy.fields) >= count
        assert all(meaning for _, _, meaning in deploy.fields)
    fields = {name: role for name, role, _ in deploy_config.read(CENTERPOINT).fields}
    assert fields["onnx_config.opset_version"] == "drives" and fields["runtime_io.sample_idx"] == "not applicable"
    assert fields["components.pts_voxel_encoder.tensorrt_profile"] == "drives" and fields["_WORK_DIR"] == "not applicable"
    assert fields["verification.tolerance"] == "drives" and fields["components.pts_voxel_encoder.engine_file"] == "not applicable"


def test_the_structure_reads_as_the_spec(tmp_path):
    deploy = deploy_config.read(CENTERPOINT)
    spec = validate(deploy_apply.apply(TINY_SPEC, deploy))
    encoder = spec.component("pts_voxel_encoder")
    assert encoder.onnx.opset == 17 and TINY_SPEC.component("pts_voxel_encoder").onnx.opset == 13  # the config's opset exports
    assert encoder.inputs[0].shape == (Dim("num_voxels", 100, 3000, 12000), Dim("num_max_points", 32, 32, 32), 11)
    head = spec.component("pts_backbone_neck_head")  # dynamic in the graph, fixed by the profile
    assert head.inputs[0].shape == (Dim("batch_size", 1, 1, 1), 32, Dim("height", 128, 128, 128), Dim("width", 128, 128, 128))
    assert head.outputs[0].shape == (1, 5, 64, 64)  # the config names the heads' axes like the input's: the graph's sizes stay
    assert deploy.precisions == (Precision.TF32,) and deploy.tolerance == 1.0  # "auto": TensorRT's default lets fp32 run as TF32
    for policy, precision in (("fp32_tf32", Precision.TF32), ("fp16", Precision.FP16)):
        assert _read(tmp_path, CENTERPOINT, f"tensorrt_config['precision_policy'] = {policy!r}\n").precisions == (precision,)
    facts = {fact.name: fact for fact in spec.facts}
    assert facts["deploy.opset"].value == 17 and facts["deploy.opset"].source == str(CENTERPOINT)
    assert facts["pts_voxel_encoder.profile"].value == {"input_features": [[100, 32, 11], [3000, 32, 11], [12000, 32, 11]]}
    assert "heatmap axis 2: the config names it 'height', the graph gives it 64" in facts["pts_backbone_neck_head.kept_static"].value[1]
    plan = _plan(tmp_path, deploy)
    parity = _ids(plan, "parity")
    assert "centerpoint-tiny/pts_voxel_encoder/tensorrt-cuda0-tf32@onnxruntime-cuda-cuda0-fp32" in parity  # chained reference
    assert "centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32" in parity  # pytorch-cpu -> onnx-cpu: the ordinary test
    assert "centerpoint-tiny/pts_voxel_encoder/tensorrt-cpu-tf32" in parity  # the precision policy's target
    assert _ids(plan, "metric") == {"centerpoint-tiny/onnxruntime-cpu-fp32", "centerpoint-tiny/tensorrt-cuda0-tf32"}
    assert not any("@" in case_id for case_id in _ids(plan, "shapes"))


def test_the_mmdeploy_layout_reads_as_the_spec():
    deploy = deploy_config.read(CALIBRATION)
    spec = validate(deploy_apply.apply(CALIBRATION_TINY, deploy))
    classifier = spec.component("classifier")
    assert deploy.layout == "mmdeploy" and classifier.onnx.opset == 16
    batch = Dim("batch", 1, 1, 1)  # the config's profile: one frame, where the spec allows two
    assert classifier.inputs[0].shape == (batch, 5, Dim("height", 64, 96, 128), Dim("width", 96, 144, 192))
    assert classifier.outputs[0].shape == (batch, 2)


DRIVEN = [
    # (change appended to the centerpoint-tiny deploy config, what must follow from it)
    ("onnx_config['opset_version'] = 16\n", lambda s, p: s.component("pts_voxel_encoder").onnx.opset == 16),
    ("onnx_config['do_constant_folding'] = False\n", lambda s, p: not s.component("pts_backbone_neck_head").onnx.do_constant_folding),
    ("components['pts_voxel_encoder']['tensorrt_profile']['input_features']['opt_shape'] = [2000, 32, 11]\n",
     lambda s, p: s.component("pts_voxel_encoder").inputs[0].shape[0] == Dim("num_voxels", 100, 2000, 12000)),
    ("components['pts_voxel_encoder']['tensorrt_profile']['input_features']['min_shape'] = [500, 32, 11]\n",
     lambda s, p: s.component("pts_voxel_encoder").inputs[0].shape[0].min == 500),
    ("components['pts_voxel_encoder']['io']['dynamic_axes'] = {'input_features': {0: 'voxels'}, 'pillar_features': {0: 'voxels'}}\n",
     lambda s, p: s.component("pts_voxel_encoder").outputs[0].shape[0].name == "voxels"),
    ("components['pts_backbone_neck_head']['io']['dynamic_axes'] = {}\n",  # AWML's names batch, height and width
     lambda s, p: s.component("pts_backbone_neck_head").inputs[0].shape == (1, 32, 128, 128)),
    ("tensorrt_config['precision_policy'] = 'fp16'\n", lambda s, p: "centerpoint-tiny/pts_voxel_encoder/tensorrt-cpu-fp16" in _ids(p, "parity")),
    ("tensorrt_config['precision_policy'] = 'strongly_typed'\n",  # TensorRT's strongly typed network: its own backend
     lambda s, p: "centerpoint-tiny/pts_voxel_encoder/tensorrt-typed-cuda0-tf32@onnxruntime-cuda-cuda0-fp32" in _ids(p, "parity")),
    ("export['mode'] = 'onnx'\n", lambda s, p: not any("tensorrt" in i for i in _ids(p, "parity") | _ids(p, "export"))),
    ("verification['enabled'] = False\n", lambda s, p: not any("@" in i for i in _ids(p, "parity"))),
    ("verification['scenarios']['both'] = [dict(ref_backend='onnx', ref_device='cpu', test_backend='pytorch', test_device='cuda')]\n",
     lambda s, p: "centerpoint-tiny/pts_voxel_encoder/pytorch-cuda0-fp32@onnxruntime-cpu-fp32" in _ids(p, "parity")),
    ("devices['cuda'] = 'cuda:1'\nverification['devices'] = devices\n",
     lambda s, p: "centerpoint-tiny/pts_voxel_encoder/tensorrt-cuda1-tf32@onnxruntime-cuda-cuda1-fp32" in _ids(p, "parity")),
    ("evaluation['backends']['tensorrt']['enabled'] = False\n", lambda s, p: _ids(p, "metric") == {"centerpoint-tiny/onnxruntime-cpu-fp32"}),
    ("evaluation['backends']['onnx']['device'] = 'cuda:0'\n", lambda s, p: "centerpoint-tiny/onnxruntime-cuda-cuda0-fp32" in _ids(p, "metric")),
    ("evaluation['enabled'] = False\n", lambda s, p: "centerpoint-tiny/tensorrt-cuda0-tf32" not in _ids(p, "metric")),
    ("verification['tolerance'] = 0.5\n", lambda s, p: p.options.deploy.tolerance == 0.5),
]


@pytest.mark.parametrize("change, follows", DRIVEN, ids=[change.split("=")[0].strip() for change, _ in DRIVEN])
def test_a_field_that_drives_changes_the_run(tmp_path, change, follows):
    deploy = _read(tmp_path, CENTERPOINT, change)
    plan = _plan(tmp_path, deploy)
    assert follows(plan.specs[0], plan)
    before = _plan(tmp_path, deploy_config.read(CENTERPOINT))
    assert not follows(before.specs[0], before)  # the change made it


REFUSED = [
    ("foo = 1\n", AwmlError, "unknown field 'foo'"),
    ("onnx_config['opset'] = 17\n", AwmlError, "unknown field 'onnx_config.opset'"),
    ("components['pts_voxel_encoder']['io']['shapes'] = []\n", AwmlError, "unknown field 'components.pts_voxel_encoder.io.shapes'"),
    ("tensorrt_config['precision_policy'] = 'int4'\n", AwmlError, "tensorrt_config.precision_policy: 'int4'"),
    ("export['mode'] = 'none'\n", AwmlError, "export.mode: 'none'"),
    ("onnx_config['export_params'] = False\n", AwmlError, "set onnx_config.export_params=True"),
    ("onnx_config['simplify'] = True\n", AwmlError, "no onnxsim pass"),
    ("verification['scenarios']['both'][0]['test_backend'] = 'openvino'\n", AwmlError, "backend 'openvino' on 'cpu'"),
    ("verification['tolerance'] = -1\n", AwmlError, "verification.tolerance: -1"),
    ("components['pts_voxel_encoder']['tensorrt_profile']['input_features']['max_shape'] = [6000, 32, 11]\n", SpecError,
     "profile"),  # the spec's own check: the profile's max pillars must be the voxelizer's
    ("components['pts_voxel_encoder']['io']['inputs'] = [dict(name='voxels', dtype='float32')]\n", SpecError,
     "the config's inputs are ['voxels'], the graph's are ['input_features']"),
    ("components['pts_voxel_encoder']['io']['inputs'] = [dict(name='input_features', dtype='float16')]\n", SpecError,
     "'input_features' is float16 in the config, float32 in the graph"),
    ("components['pts_voxel_encoder']['io']['dynamic_axes'] = {'input_features': {0: 'voxels'}}\n", SpecError,
     "output 'pillar_features' axis 0 follows the input dim 'num_voxels', but dynamic_axes does not list it"),
    ("components['pts_voxel_encoder']['io']['dynamic_axes'] = {}\n", SpecError, "but dynamic_axes does not list that axis"),
    ("components['pts_voxel_encoder']['tensorrt_profile']['input_features']['min_shape'] = [100, 32]\n", AwmlError,
     "three shapes of one rank"),
    ("components['lidar_encoder'] = components.pop('pts_voxel_encoder')\n", SpecError, "outside the readable subset"),
    ("components = dict(lidar_encoder=components['pts_voxel_encoder'])\n", SpecError, "component 'lidar_encoder'"),
]


@pytest.mark.parametrize("change, error, fragment", REFUSED, ids=[change.split("=")[0].strip() for change, _, _ in REFUSED])
def test_a_field_or_value_the_harness_cannot_honour_is_refused_by_name(tmp_path, change, error, fragment):
    with pytest.raises(error) as info:
        _plan(tmp_path, _read(tmp_path, CENTERPOINT, change))
    assert fragment in str(info.value)


def test_a_spec_that_maps_no_deploy_component_refuses_the_config(tmp_path):
    with pytest.raises(SpecError, match="maps no deploy config components"):
        deploy_apply.apply(dataclasses.replace(TINY_SPEC, deploy_components={}), deploy_config.read(CENTERPOINT))
    with pytest.raises(SpecError, match="component 'end2end' of .* is none of the spec's"):
        deploy_apply.apply(TINY_SPEC, deploy_config.read(CALIBRATION))


def test_the_deploy_tolerance_is_reported_beside_the_spec_s_which_gates():
    deploy = deploy_config.read(CENTERPOINT)
    figures = [type("C", (), {"max_abs": value})() for value in (0.2, 0.7)]
    assert deploy_tolerance(deploy, figures) == {"deploy_tolerance": 1.0, "within_deploy_tolerance": True, "tolerance_gate": "spec"}
    tight = dataclasses.replace(deploy, tolerance=0.5)
    assert deploy_tolerance(tight, figures)["within_deploy_tolerance"] is False
    assert deploy_tolerance(None, figures) == {}


def test_checkpoint_path_is_the_checkpoint_s_default(pytester):
    (pytester.path / "deploy.py").write_text(CENTERPOINT.read_text() + "\ncheckpoint_path = 'work_dirs/best.pth'\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec", "centerpoint-tiny", "--awml-deploy-config=deploy.py",
                                "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "checkpoint_path 'work_dirs/best.pth' names" in result.stderr.str() + result.stdout.str()
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec", "centerpoint-tiny", "--awml-deploy-config=deploy.py",
                                f"--awml-checkpoint={Path(__file__).parents[1] / 'model_specs/centerpoint/weights/centerpoint-tiny.pt'}",
                                "--collect-only", "-q")  # --awml-checkpoint overrides it
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert "test_parity[centerpoint-tiny/pts_voxel_encoder/tensorrt-cuda0-tf32@onnxruntime-cuda-cuda0-fp32]" in result.stdout.str()


def test_a_strongly_typed_policy_builds_strongly_typed_networks_from_the_graph_s_types():
    """AWML's strongly_typed policy sets TensorRT's STRONGLY_TYPED network flag and nothing else: the tf32 engine of the
    tensorrt-typed backend, built without an fp16 flag (an fp16 engine from the fp16 graph), keyed apart from TensorRT's."""
    from exporters.tensorrt_build import TENSORRT, TENSORRT_TYPED
    from pytest_awml.builders.tensorrt import EngineBuilder, graph_format, options_for

    assert options_for(Precision.TF32, TENSORRT_TYPED).strongly_typed and options_for(Precision.TF32, TENSORRT_TYPED).tf32
    assert not options_for(Precision.TF32, TENSORRT).strongly_typed
    assert options_for(Precision.FP16, TENSORRT_TYPED).fp16 is False and graph_format(Precision.FP16, TENSORRT_TYPED) == "onnx-fp16"
    assert EngineBuilder(Precision.TF32, TENSORRT_TYPED).format != EngineBuilder(Precision.TF32, TENSORRT).format
    assert "tensorrt-typed" not in backends.builtin().default_names(Device.parse("cuda"))  # on request only
