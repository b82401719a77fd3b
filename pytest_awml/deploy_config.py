"""``--awml-deploy-config``: AWML's deploy configs, read into one typed :class:`DeployConfig`.

Two layouts exist: the deployment framework's ``deploy_config.py`` (``components`` with their I/O, dynamic
axes and TensorRT profiles; ``onnx_config``; ``tensorrt_config.precision_policy``; ``evaluation`` and
``verification``) and mmdeploy's (``codebase_config``, ``backend_config.model_inputs``, ``onnx_config`` with
``input_names``/``dynamic_axes``, one graph: ``end2end``). Both are read with the bounded, non-executing
config reader. Every field either drives the run (``deploy_fields.DRIVES``: the export's opset and dynamic axes,
the engines' profiles, the precision targets, the verification scenarios, the evaluation targets, the default
checkpoint) or is listed by name as not applicable with the reason (``deploy_fields.NOT_APPLICABLE``); any other field,
or a value this harness cannot honour, is an :class:`AwmlError` naming it (a usage error, exit 4).

Which of a spec's components a config's component is, is model knowledge: the spec declares it
(``ModelSpec.deploy_components``); nothing here guesses from names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_awml.config_reader import ConfigFile, names_read, read_config
from pytest_awml.deploy_fields import (
    DEPLOYMENT_TOP,
    DRIVES,
    END2END,
    EXPORT_MODES,
    FLAG,
    KIND,
    MMDEPLOY_TOP,
    NOT_APPLICABLE,
    POLICIES,
    REQUIRED,
    REQUIRED_WHY,
    EnginePolicy,
    refused,
)
from pytest_awml.deploy_types import DeployComponent, DeployConfig, Endpoint, Profile, Scenario
from pytest_awml.device import Device, Precision
from pytest_awml.errors import AwmlError

__all__ = ["FLAG", "KIND", "DeployComponent", "DeployConfig", "Endpoint", "Profile", "Scenario", "read"]  # the types: deploy_types


def read(path: Path) -> DeployConfig:
    """The deploy config at ``path``, every field accounted for; an unknown field or value raises naming it."""
    config = read_config(path, KIND)
    return _Parser(config).parse()


class _Parser:
    def __init__(self, config: ConfigFile) -> None:
        self.config, self.values = config, dict(config.values)
        self.own = set(config.layers[-1][1]) if config.layers else set(self.values)
        self.helpers = names_read(config.path, KIND)  # variables the file reads: its own helpers, not fields
        self.fields: list[tuple[str, str, str]] = []

    # -- the ledger: every field the file sets is recorded, or refused --------------------------------------
    def drives(self, name: str, pattern: str | None = None) -> None:
        self.fields.append((name, "drives", DRIVES[pattern or name]))

    def inert(self, name: str, pattern: str | None = None) -> None:
        self.fields.append((name, "not applicable", NOT_APPLICABLE[pattern or name]))

    def unknown(self, name: str, known: Mapping[str, Any] | tuple[str, ...]) -> AwmlError:
        return AwmlError(f"{FLAG} {self.config.path}: unknown field {name!r}: this harness reads "
                         f"{', '.join(sorted(known))} there. Fix: remove or rename it")

    def section(self, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        node = self.values.get(name, {})
        if not isinstance(node, dict):
            raise refused(name, f"a {type(node).__name__}", "make it a dict(...)")
        for key in node:
            if key not in allowed:
                raise self.unknown(f"{name}.{key}", allowed)
        return node

    def required(self, name: str, value: Any) -> None:
        if value != REQUIRED[name]:
            raise refused(name, repr(value), f"set {name}={REQUIRED[name]!r}: {REQUIRED_WHY[name]}")
        self.inert(name)

    # -- the two layouts --------------------------------------------------------------------------------------
    def parse(self) -> DeployConfig:
        """The typed config; the layout is told by its top-level keys."""
        layout = "deployment" if "components" in self.values else "mmdeploy" if "onnx_config" in self.values else None
        if layout is None:
            raise AwmlError(f"{FLAG} {self.config.path}: neither a deployment-framework config (no 'components') nor an "
                            "mmdeploy config (no 'onnx_config'). Fix: give AWML's deploy config, not a training config")
        top = DEPLOYMENT_TOP if layout == "deployment" else MMDEPLOY_TOP
        for key in self.values:
            if key.startswith("_") or (key in self.helpers and key not in top):
                self.inert(key, "_<name>")
            elif key not in self.own and key not in top:
                self.inert(key, "<inherited>")
            elif key not in top:
                raise self.unknown(key, top)
        onnx = self._onnx()
        result = self._deployment(onnx) if layout == "deployment" else self._mmdeploy(onnx)
        return result

    def _onnx(self) -> dict[str, Any]:
        onnx = self.section("onnx_config", ("type", "export_params", "keep_initializers_as_inputs", "opset_version",
                                            "do_constant_folding", "simplify", "save_file", "input_names", "output_names",
                                            "dynamic_axes", "input_shape", "verbose"))
        if "verbose" in onnx:
            self.inert("onnx_config.verbose")
        for key in ("type", "export_params", "keep_initializers_as_inputs", "simplify"):
            if key in onnx:
                self.required(f"onnx_config.{key}", onnx[key])
        shape = onnx.get("input_shape")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 2
                                      and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise refused("onnx_config.input_shape", repr(shape)[:80], "give [width, height] in pixels, or None")
        if "input_shape" in onnx:
            self.drives("onnx_config.input_shape")
        if "save_file" in onnx:
            self.inert("onnx_config.save_file")
        opset = onnx.get("opset_version")
        if opset is not None:
            if not isinstance(opset, int) or isinstance(opset, bool):
                raise refused("onnx_config.opset_version", repr(opset), "give an integer opset")
            self.drives("onnx_config.opset_version")
        if "do_constant_folding" in onnx:
            if not isinstance(onnx["do_constant_folding"], bool):
                raise refused("onnx_config.do_constant_folding", repr(onnx["do_constant_folding"]), "give True or False")
            self.drives("onnx_config.do_constant_folding")
        return onnx

    def _devices(self, where: str, node: Any) -> dict[str, str]:
        if not isinstance(node, dict) or not all(isinstance(v, str) for v in node.values()):
            raise refused(where, repr(node)[:80], "give dict(cpu='cpu', cuda='cuda:0')")
        for name, device in node.items():
            try:
                Device.parse(device)
            except AwmlError:
                raise refused(f"{where}.{name}", repr(device), "use cpu, cuda or cuda:N") from None
        self.drives(where)
        return node

    def _deployment(self, onnx: dict[str, Any]) -> DeployConfig:
        for key in ("input_names", "output_names", "dynamic_axes"):
            if key in onnx:
                raise self.unknown(f"onnx_config.{key}", ("opset_version", "do_constant_folding", "export_params",
                                                          "keep_initializers_as_inputs", "simplify"))
        devices = self._devices("devices", self.values["devices"]) if "devices" in self.values else {}
        checkpoint = self.values.get("checkpoint_path")
        if checkpoint is not None:
            if not isinstance(checkpoint, str):
                raise refused("checkpoint_path", repr(checkpoint), "give a path string")
            self.drives("checkpoint_path")
        if "deploy_log_path" in self.values:
            self.inert("deploy_log_path")
        export = self.section("export", ("mode", "work_dir", "onnx_path"))
        mode = export.get("mode", "both")
        if mode not in EXPORT_MODES:
            raise refused("export.mode", repr(mode), f"use one of {', '.join(EXPORT_MODES)}")
        if mode == "none":
            raise refused("export.mode", repr(mode), "the harness tests the graphs it exports: use onnx, trt or both")
        if "mode" in export:
            self.drives("export.mode")
        for key in ("work_dir", "onnx_path"):
            if key in export:
                self.inert(f"export.{key}")
        runtime = self.section("runtime_io", ("info_file", "sample_idx"))
        for key in runtime:
            self.inert(f"runtime_io.{key}")
        components = tuple(self._component(name, node) for name, node in self._named("components"))
        trt = self.section("tensorrt_config", ("precision_policy", "max_workspace_size"))
        if "max_workspace_size" in trt:
            self.inert("tensorrt_config.max_workspace_size")
        policy = trt.get("precision_policy", "auto")
        if policy not in POLICIES:
            raise refused("tensorrt_config.precision_policy", repr(policy), f"use one of {', '.join(POLICIES)}")
        if "precision_policy" in trt:
            self.drives("tensorrt_config.precision_policy")
        tolerance, scenarios = self._verification(devices, mode, POLICIES[policy])
        return DeployConfig(self.config.path, "deployment", components, onnx.get("opset_version"), onnx.get("do_constant_folding"),
                            checkpoint, mode, (POLICIES[policy].precision,) if mode in ("trt", "both") else (), scenarios, tolerance,
                            self._evaluation(devices, POLICIES[policy]), tuple(self.fields))

    def _named(self, section: str) -> list[tuple[str, dict]]:
        node = self.values.get(section, {})
        if not isinstance(node, dict) or not all(isinstance(v, dict) for v in node.values()):
            raise refused(section, repr(node)[:80], "give dict(<name>=dict(...), ...)")
        return list(node.items())

    def _component(self, name: str, node: dict) -> DeployComponent:
        where = f"components.{name}"
        self.drives(where, "components.<name>")
        for key in node:
            if key not in ("onnx_file", "engine_file", "io", "tensorrt_profile"):
                raise self.unknown(f"{where}.{key}", ("onnx_file", "engine_file", "io", "tensorrt_profile"))
            if key in ("onnx_file", "engine_file"):
                self.inert(f"{where}.{key}", f"components.<name>.{key}")
        io = node.get("io", {})
        for key in io:
            if key not in ("inputs", "outputs", "dynamic_axes"):
                raise self.unknown(f"{where}.io.{key}", ("inputs", "outputs", "dynamic_axes"))
            self.drives(f"{where}.io.{key}", f"components.<name>.io.{key}")
        profiles = self._profiles(f"{where}.tensorrt_profile", node.get("tensorrt_profile", {}))
        if "tensorrt_profile" in node:
            self.drives(f"{where}.tensorrt_profile", "components.<name>.tensorrt_profile")
        return DeployComponent(name, self._tensors(f"{where}.io.inputs", io.get("inputs", [])),
                               self._tensors(f"{where}.io.outputs", io.get("outputs", [])),
                               _axes(f"{where}.io.dynamic_axes", io.get("dynamic_axes", {})), profiles)

    def _tensors(self, where: str, node: Any) -> tuple[tuple[str, str], ...]:
        if not isinstance(node, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in node):
            raise refused(where, repr(node)[:80], "give [dict(name=..., dtype=...), ...]")
        for tensor in node:
            extra = set(tensor) - {"name", "dtype"}
            if extra:
                raise self.unknown(f"{where}[{tensor['name']}].{sorted(extra)[0]}", ("name", "dtype"))
        return tuple((t["name"], str(t.get("dtype", ""))) for t in node)

    def _profiles(self, where: str, node: Any) -> dict[str, Profile]:
        if not isinstance(node, dict):
            raise refused(where, repr(node)[:80], "give dict(<input>=dict(min_shape=[...], opt_shape=[...], max_shape=[...]))")
        profiles = {}
        for name, shapes in node.items():
            keys = ("min_shape", "opt_shape", "max_shape")
            if not isinstance(shapes, dict) or set(shapes) != set(keys):
                raise refused(f"{where}.{name}", repr(shapes)[:80], "give exactly min_shape, opt_shape and max_shape")
            triple = [shapes[k] for k in keys]
            if not all(isinstance(s, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in s)
                       for s in triple) or len({len(s) for s in triple}) != 1:
                raise refused(f"{where}.{name}", repr(triple)[:120], "give three shapes of one rank, positive integers")
            if not all(a <= b <= c for a, b, c in zip(*triple, strict=True)):  # one rank, checked above
                raise refused(f"{where}.{name}", repr(triple)[:120], "need min <= opt <= max on every axis")
            profiles[name] = Profile(*(tuple(s) for s in triple))
        return profiles

    def _verification(self, devices: dict[str, str], mode: str, engine: EnginePolicy) -> tuple[float | None, tuple[Scenario, ...]]:
        node = self.section("verification", ("enabled", "tolerance", "num_verify_samples", "devices", "scenarios"))
        if not node:
            return None, ()
        enabled = node.get("enabled", True)
        if not isinstance(enabled, bool):
            raise refused("verification.enabled", repr(enabled), "give True or False")
        self.drives("verification.enabled")
        tolerance = node.get("tolerance")
        if tolerance is not None:
            if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not math.isfinite(tolerance) or tolerance < 0:
                raise refused("verification.tolerance", repr(tolerance), "give a finite number >= 0")
            self.drives("verification.tolerance")
        if "num_verify_samples" in node:
            self.inert("verification.num_verify_samples")
        devices = self._devices("verification.devices", node["devices"]) if "devices" in node else devices
        scenarios = node.get("scenarios", {})
        if not isinstance(scenarios, dict) or set(scenarios) - set(EXPORT_MODES):
            raise refused("verification.scenarios", repr(sorted(scenarios) if isinstance(scenarios, dict) else scenarios)[:80],
                         f"key the scenario lists by export mode ({', '.join(EXPORT_MODES)})")
        self.drives("verification.scenarios")
        chosen = []
        for index, item in enumerate(scenarios.get(mode, []) if enabled else []):
            where = f"verification.scenarios.{mode}[{index}]"
            keys = ("ref_backend", "ref_device", "test_backend", "test_device")
            if not isinstance(item, dict) or set(item) != set(keys):
                raise refused(where, repr(item)[:100], f"give exactly {', '.join(keys)}")
            chosen.append(Scenario(Endpoint.parse(where, item["ref_backend"], devices.get(item["ref_device"], item["ref_device"]), engine),
                                   Endpoint.parse(where, item["test_backend"], devices.get(item["test_device"], item["test_device"]), engine)))
        return (float(tolerance) if tolerance is not None else None), tuple(chosen)

    def _evaluation(self, devices: dict[str, str], engine: EnginePolicy) -> tuple[Endpoint, ...]:
        node = self.section("evaluation", ("enabled", "num_samples", "verbose", "backends"))
        for key in ("num_samples", "verbose"):
            if key in node:
                self.inert(f"evaluation.{key}")
        if not node:
            return ()
        enabled = node.get("enabled", True)
        self.drives("evaluation.enabled")
        found = []
        for name, backend in node.get("backends", {}).items():
            if not isinstance(backend, dict):
                raise refused(f"evaluation.backends.{name}", repr(backend)[:80], "give dict(enabled=..., device=...)")
            for key in backend:
                if key not in ("enabled", "device", "model_dir", "engine_dir"):
                    raise self.unknown(f"evaluation.backends.{name}.{key}", ("enabled", "device", "model_dir", "engine_dir"))
                if key in ("model_dir", "engine_dir"):
                    self.inert(f"evaluation.backends.{name}.{key}", f"evaluation.backends.<name>.{key}")
                else:
                    self.drives(f"evaluation.backends.{name}.{key}", f"evaluation.backends.<name>.{key}")
            if enabled and backend.get("enabled", True):
                device = backend.get("device", "cpu")
                found.append(Endpoint.parse(f"evaluation.backends.{name}", name, devices.get(device, device), engine))
        return tuple(dict.fromkeys(found))

    def _mmdeploy(self, onnx: dict[str, Any]) -> DeployConfig:
        codebase = self.section("codebase_config", ("type", "task", "model_type"))
        for key in ("type", "task"):
            if key in codebase:
                self.inert(f"codebase_config.{key}")
        if "model_type" in codebase:
            self.required("codebase_config.model_type", codebase["model_type"])
        backend = self.section("backend_config", ("type", "common_config", "model_inputs"))
        kind = backend.get("type")
        if kind not in (None, "tensorrt", "onnxruntime"):
            raise refused("backend_config.type", repr(kind), "use tensorrt or onnxruntime")
        if kind is not None:
            self.drives("backend_config.type")
        common = backend.get("common_config", {})
        for key in common:
            if key == "max_workspace_size":
                self.inert("backend_config.common_config.max_workspace_size")
            elif key == "fp16_mode":
                self.drives("backend_config.common_config.fp16_mode")
            else:
                raise self.unknown(f"backend_config.common_config.{key}", ("max_workspace_size", "fp16_mode"))
        profiles: dict[str, Profile] = {}
        inputs = backend.get("model_inputs", [])
        if len(inputs) > 1:
            raise refused("backend_config.model_inputs", f"{len(inputs)} profiles", "give one: the harness builds one profile per graph")
        for item in inputs:
            if not isinstance(item, dict) or set(item) != {"input_shapes"}:
                raise refused("backend_config.model_inputs[0]", repr(item)[:80], "give dict(input_shapes=dict(...))")
            profiles.update(self._profiles("backend_config.model_inputs[0].input_shapes", item["input_shapes"]))
            self.drives("backend_config.model_inputs")
        tensorrt = self.values.get("tensorrt_config", {})  # one project's layout: profiles by input name directly
        profiles.update(self._profiles("tensorrt_config", tensorrt))
        for name in tensorrt:
            self.drives(f"tensorrt_config.{name}", "tensorrt_config.<input>")
        for key in ("input_names", "output_names", "dynamic_axes"):
            if key in onnx:
                self.drives(f"onnx_config.{key}")
        for key in ("custom_imports", "num_classes"):  # FRNet's deploy config copies num_classes from its training base
            if key in self.values:
                self.inert(key)
        names = [onnx.get("input_names", []), onnx.get("output_names", [])]
        if not all(isinstance(n, list) and all(isinstance(s, str) for s in n) for n in names):
            raise refused("onnx_config.input_names", repr(names)[:80], "give lists of names")
        shape = onnx.get("input_shape")
        component = DeployComponent(END2END, tuple((n, "") for n in names[0]), tuple((n, "") for n in names[1]),
                                    _axes("onnx_config.dynamic_axes", onnx.get("dynamic_axes", {})), profiles,
                                    (shape[1], shape[0]) if shape is not None else None)
        uses_trt = kind == "tensorrt" or bool(tensorrt)
        precisions = ((Precision.FP16,) if common.get("fp16_mode") else (Precision.TF32,)) if uses_trt else ()
        return DeployConfig(self.config.path, "mmdeploy", (component,), onnx.get("opset_version"), onnx.get("do_constant_folding"),
                            None, "both" if uses_trt else "onnx", precisions, (), None, (), tuple(self.fields))


def _axes(where: str, node: Any) -> dict[str, dict[int, str]]:
    if not isinstance(node, dict) or not all(isinstance(v, dict) for v in node.values()):
        raise refused(where, repr(node)[:80], "give {tensor: {axis: name}}")
    for tensor, axes in node.items():
        for axis, name in axes.items():
            if not isinstance(axis, int) or isinstance(axis, bool) or axis < 0 or not isinstance(name, str) or not name.isidentifier():
                raise refused(f"{where}.{tensor}", repr(axes)[:80], "give {axis index: dim name}")
    return {tensor: dict(axes) for tensor, axes in node.items()}
