"""What each field of an AWML deploy config does in this harness: the tables :mod:`pytest_awml.deploy_config`
reads a config by.

A field either drives the run (:data:`DRIVES`, with what it drives) or is not applicable here, with the reason
(:data:`NOT_APPLICABLE`); a fixed-value field must hold the value the harness's export matches (:data:`REQUIRED`,
:data:`REQUIRED_WHY`). Adding a field the harness honours is a row here and the code in ``deploy_config`` that
reads it; the tables are data, so the report's ``run.deploy_config.fields`` quotes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_awml.device import Precision
from pytest_awml.errors import AwmlError

FLAG = "--awml-deploy-config"
KIND = ("deploy config", FLAG)


def refused(where: str, what: str, fix: str) -> AwmlError:
    """The one wording of a field or value the harness cannot honour (a usage error naming it)."""
    return AwmlError(f"{FLAG}: {where}: {what} is not something this harness can honour. Fix: {fix}")


END2END = "end2end"  # the one graph of an mmdeploy config (its model_type)



@dataclass(frozen=True)
class EnginePolicy:
    """What a precision policy makes of AWML's ``tensorrt`` backend: the harness's engine backend and its precision."""

    precision: Precision
    backend: str = "tensorrt"


# AWML's precision policies (deployment/configs/enums.py, exporters/common/tensorrt_exporter.py) → the harness's
# TensorRT target. "auto" sets no builder flag: TensorRT's default lets fp32 layers run in TF32, as "fp32_tf32" asks
# explicitly. "strongly_typed" sets only the STRONGLY_TYPED network flag: every precision from the (fp32) graph's
# types, TF32 left at the builder's default: the tf32 engine of the strongly typed TensorRT backend.
POLICIES = {"auto": EnginePolicy(Precision.TF32), "fp32_tf32": EnginePolicy(Precision.TF32), "fp16": EnginePolicy(Precision.FP16),
            "strongly_typed": EnginePolicy(Precision.TF32, "tensorrt-typed")}
EXPORT_MODES = ("onnx", "trt", "both", "none")
ENGINE_BACKEND = "tensorrt"  # AWML's name of the backend whose precision the policy sets
# AWML's backend names → the harness's, per device type
BACKENDS = {("pytorch", "cpu"): "pytorch", ("pytorch", "cuda"): "pytorch", ("onnx", "cpu"): "onnxruntime",
            ("onnx", "cuda"): "onnxruntime-cuda", ("tensorrt", "cuda"): "tensorrt"}
# what each fixed-value field must hold for the harness's export to be the one the config describes
REQUIRED = {"onnx_config.export_params": True, "onnx_config.keep_initializers_as_inputs": False, "onnx_config.simplify": False,
            "onnx_config.type": "onnx", "codebase_config.model_type": END2END}
REQUIRED_WHY = {"onnx_config.export_params": "the exported graph carries its weights",
                "onnx_config.keep_initializers_as_inputs": "weights stay initializers, not graph inputs",
                "onnx_config.simplify": "the harness tests the graph as torch exports it (no onnxsim pass)",
                "onnx_config.type": "the harness exports ONNX",
                "codebase_config.model_type": "the harness tests the end-to-end graph"}

DRIVES = {
    "checkpoint_path": "--awml-checkpoint's default",
    "devices": "the devices scenarios and evaluation backends name",
    "export.mode": "which formats are tested (onnx: no TensorRT targets) and which verification scenarios apply",
    "components.<name>": "the spec component it maps to (ModelSpec.deploy_components)",
    "components.<name>.io.inputs": "checked against the component's input names and dtypes",
    "components.<name>.io.outputs": "checked against the component's output names and dtypes",
    "components.<name>.io.dynamic_axes": "the export's dynamic axes (an input axis not listed is static)",
    "components.<name>.tensorrt_profile": "each input's min/opt/max: the engines' profile, test_shapes' corners, the spec's profile checks",
    "onnx_config.opset_version": "the export's opset",
    "onnx_config.do_constant_folding": "the export's constant folding",
    "onnx_config.input_names": "checked against the component's input names",
    "onnx_config.output_names": "checked against the component's output names",
    "onnx_config.input_shape": "mmdeploy's [width, height] of the image it exports at: checked against the graph's first input's "
                               "last two axes (None: the profiles alone decide)",
    "onnx_config.dynamic_axes": "the export's dynamic axes",
    "backend_config.type": "tensorrt: TensorRT targets join the run",
    "backend_config.common_config.fp16_mode": "True: the fp16 TensorRT target joins the run",
    "backend_config.model_inputs": "each input's min/opt/max (the engines' profile)",
    "tensorrt_config.precision_policy": "the TensorRT target (auto, fp32_tf32: tf32; fp16: fp16; strongly_typed: tensorrt-typed's tf32 "
                                        "engine, a strongly typed network)",
    "tensorrt_config.<input>": "that input's min/opt/max (the engines' profile)",
    "evaluation.enabled": "False: test_metric keeps the run's targets",
    "evaluation.backends.<name>.enabled": "whether that backend is a test_metric target",
    "evaluation.backends.<name>.device": "the test_metric target's device",
    "verification.enabled": "False: no scenario parity tests",
    "verification.tolerance": "judged on every parity record of the spec beside the spec's per-output tolerances "
                              "(reported as deploy_tolerance / within_deploy_tolerance); the spec's tolerances gate",
    "verification.scenarios": "the scenarios of export.mode: each a parity test against its own reference",
    "verification.devices": "the devices the scenarios name",
}
NOT_APPLICABLE = {
    "_<name>": "a helper variable of the file (named with '_', or read by the file itself): its value reaches the fields that use it",
    "deploy_log_path": "the harness logs through pytest (--log-file)",
    "custom_imports": "modules AWML registers; the spec builds the model",
    "num_classes": "the class count is the training config's (--awml-config); the graph's output is checked against the spec's",
    "codebase_config.type": "the spec builds the model (mmdeploy's codebase is not used)",
    "codebase_config.task": "the spec builds the model (mmdeploy's task is not used)",
    "codebase_config.model_type": REQUIRED_WHY["codebase_config.model_type"],
    "export.work_dir": "files go to --awml-artifacts, content-addressed",
    "export.onnx_path": "the harness exports the graph itself (--awml-artifacts)",
    "components.<name>.onnx_file": "files are named by component and key under --awml-artifacts",
    "components.<name>.engine_file": "files are named by component and key under --awml-artifacts",
    "onnx_config.save_file": "files are named by component and key under --awml-artifacts",
    "onnx_config.verbose": "the exporter's own logging; the harness records what it checked in the report",
    "onnx_config.export_params": REQUIRED_WHY["onnx_config.export_params"],
    "onnx_config.keep_initializers_as_inputs": REQUIRED_WHY["onnx_config.keep_initializers_as_inputs"],
    "onnx_config.simplify": REQUIRED_WHY["onnx_config.simplify"],
    "onnx_config.type": REQUIRED_WHY["onnx_config.type"],
    "runtime_io.info_file": "samples come from --awml-data or are seeded (the dataset index is not read)",
    "runtime_io.sample_idx": "samples come from --awml-data or are seeded (the dataset index is not read)",
    "tensorrt_config.max_workspace_size": "engines are built with a bounded workspace of their own; it limits tactics, not results",
    "backend_config.common_config.max_workspace_size": "engines are built with a bounded workspace of their own; it limits tactics, not results",
    "evaluation.num_samples": "test_metric scores the run's samples (--awml-samples)",
    "evaluation.verbose": "the harness reports every metric record in the JSON report",
    "evaluation.backends.<name>.model_dir": "the harness runs the files it built (--awml-artifacts)",
    "evaluation.backends.<name>.engine_dir": "the harness runs the files it built (--awml-artifacts)",
    "verification.num_verify_samples": "parity compares every one of the run's samples (--awml-samples)",
    "<inherited>": "inherited from a _base_ training config: give that file to --awml-config",
}

# the top-level sections each layout may hold
DEPLOYMENT_TOP = ("checkpoint_path", "deploy_log_path", "devices", "export", "components", "runtime_io", "onnx_config",
                   "tensorrt_config", "evaluation", "verification")
MMDEPLOY_TOP = ("codebase_config", "backend_config", "onnx_config", "custom_imports", "tensorrt_config", "num_classes")
