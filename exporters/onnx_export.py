"""PyTorch module → checked ONNX file. Stateless: every call gets all it needs as arguments."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from exporters.errors import ExportError
from exporters.plugins import parser_plugin_ops, plugin_ops, prefix_before_plugins
from exporters.signature import Dim, TensorSpec

log = logging.getLogger(__name__)

PRODUCER = "pytest-awml"


@dataclass(frozen=True)
class OnnxOptions:
    """How to export one component.

    ``exporter="torchscript"`` is the default on purpose: it is what AWML ships
    (``torch.onnx.export(..., dynamic_axes=...)``), it writes exactly the requested opset (the
    dynamo exporter of torch 2.13 could not down-convert a PFN graph to opset 17 and emitted 18),
    and it is ~30x faster, which matters on a 2-core CI machine. ``"dynamo"`` is there for models
    that need ``torch.export``.

    ``max_ir_version`` caps the IR version written into the file: onnx 1.23 writes IR 14 by
    default, which onnxruntime-gpu 1.31 refuses ("max supported IR version: 13"). IR 10 is read
    by every runtime in the matrix (ONNX Runtime ≥ 1.16, TensorRT 10).
    """

    opset: int = 17
    exporter: str = "torchscript"
    metadata: tuple[tuple[str, str], ...] = ()  # stamped into the file, e.g. a consumer's convention flag
    max_ir_version: int = 10
    do_constant_folding: bool = True

    def problems(self) -> list[str]:
        found = []
        if self.exporter not in ("torchscript", "dynamo"):
            found.append(f"exporter must be 'torchscript' or 'dynamo', not {self.exporter!r}")
        if not 7 <= self.opset <= 23:
            found.append(f"opset {self.opset} is outside 7..23")
        if self.max_ir_version < 3:
            found.append(f"max_ir_version {self.max_ir_version} is below 3")
        return found


@dataclass(frozen=True)
class OnnxExportReport:
    """What one export produced; returned, never kept by the exporter."""

    path: Path
    opset: int
    ir_version: int
    seconds: float
    steps: tuple[str, ...] = field(default_factory=tuple)


def export_onnx(
    module,
    example_inputs: Sequence,
    path: Path,
    *,
    component: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    options: OnnxOptions = OnnxOptions(),
    metadata: Mapping[str, str] | None = None,
    plugins: Sequence[str] = (),
    parser_plugins: Sequence[str] = (),
) -> OnnxExportReport:
    """Export ``module`` called on ``example_inputs`` to ``path`` and prove the file is sound.

    Steps, each wrapped in :class:`ExportError` naming ``component`` and the step: export, stamp
    metadata and IR version, ``onnx.checker`` (full check), strict shape inference, signature check
    against ``inputs``/``outputs`` (names, order, static and dynamic dims), TensorRT plugin nodes against
    ``plugins`` (the op types the module's symbolics write in :data:`~exporters.plugins.PLUGIN_DOMAIN`) and
    ``parser_plugins`` (the plugin-library creators TensorRT's parser needs for standard ops),
    ONNX Runtime load (of the graph up to the plugin nodes, which only TensorRT runs).
    """
    import onnx
    import torch

    start = time.perf_counter()
    path = Path(path)
    steps: list[str] = []

    def step(name: str):
        steps.append(name)
        return _Step(component, name)

    with step("torch.onnx.export"):
        module.eval()
        dynamic_axes = {t.name: t.dynamic_axes for t in (*inputs, *outputs) if t.dynamic_axes}
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's problem
            if options.exporter == "torchscript":
                torch.onnx.export(
                    module,
                    tuple(example_inputs),
                    str(path),
                    input_names=[t.name for t in inputs],
                    output_names=[t.name for t in outputs],
                    opset_version=options.opset,
                    dynamic_axes=dynamic_axes or None,
                    do_constant_folding=options.do_constant_folding,
                    dynamo=False,
                )
            else:
                program = torch.onnx.export(
                    module,
                    tuple(example_inputs),
                    None,
                    input_names=[t.name for t in inputs],
                    output_names=[t.name for t in outputs],
                    opset_version=options.opset,
                    dynamic_shapes=_dynamic_shapes(inputs),
                    dynamo=True,
                )
                program.save(str(path), external_data=False)

    with step("stamp metadata") as current:
        model = onnx.load(str(path))
        if model.ir_version > options.max_ir_version:
            lowest = _lowest_ir_for(model)
            if lowest > options.max_ir_version:
                current.fail(
                    f"the graph needs IR version {lowest} (opset {_opset(model)}), above "
                    f"max_ir_version={options.max_ir_version}; lower the opset or raise the cap"
                )
            model.ir_version = options.max_ir_version
        _pin_static_dims(model, outputs)
        model.producer_name = PRODUCER
        model.producer_version = _version()
        stamped = {"torch_version": torch.__version__, "component": component, **(metadata or {})}
        del model.metadata_props[:]
        for key, value in sorted(stamped.items()):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, str(path))

    with step("onnx.checker"):
        onnx.checker.check_model(str(path), full_check=True)

    with step("shape inference"):
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)

    with step("signature") as current:
        problems = signature_problems(inferred, inputs, outputs)
        if problems:
            current.fail("; ".join(problems))

    with step("plugins") as current:
        found = plugin_ops(model)
        if found != tuple(sorted(plugins)):
            current.fail(f"the graph carries TensorRT plugin op(s) {list(found)}, the spec declares {sorted(plugins)}")
        library = parser_plugin_ops(model)
        if library != tuple(sorted(parser_plugins)):
            current.fail(f"TensorRT's parser builds standard op(s) of this graph from its plugin library's {list(library)} "
                         f"creator(s) (exporters.plugins.PARSED_AS_PLUGIN), the spec declares {sorted(parser_plugins)}: "
                         "set the component's parser_plugins to what the graph needs")

    with step("onnxruntime load"):
        import onnxruntime

        if found:
            with tempfile.TemporaryDirectory() as scratch:
                prefix = Path(scratch) / "prefix.onnx"
                feeds = prefix_before_plugins(path, prefix)
                onnxruntime.InferenceSession(str(prefix), providers=["CPUExecutionProvider"])
            log.info("%s: ONNX Runtime loads the graph up to %s (which feed %s)", component, feeds, list(found))
        else:
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    seconds = time.perf_counter() - start
    log.info("exported %s to %s in %.1f s (opset %d, IR %d)", component, path, seconds, _opset(model), model.ir_version)
    return OnnxExportReport(path, _opset(model), model.ir_version, seconds, tuple(steps))


def signature_problems(model, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> list[str]:
    """Where the graph's inputs/outputs differ from the declared ones (names, order, dims)."""
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    found = []
    for role, declared, actual in (("input", inputs, graph_inputs), ("output", outputs, model.graph.output)):
        names = [v.name for v in actual]
        if names != [t.name for t in declared]:
            found.append(f"graph {role}s are {names}, the spec declares {[t.name for t in declared]}")
            continue
        for spec, value in zip(declared, actual, strict=True):  # same names, so same count
            dims = value.type.tensor_type.shape.dim
            if len(dims) != len(spec.shape):
                found.append(f"{role} {spec.name!r} has rank {len(dims)} in the graph, {len(spec.shape)} in the spec")
                continue
            for axis, (want, got) in enumerate(zip(spec.shape, dims, strict=True)):  # ranks checked above
                if isinstance(want, Dim):
                    if got.dim_param != want.name:
                        shown = got.dim_param or got.dim_value
                        found.append(f"{role} {spec.name!r} axis {axis} is {shown!r} in the graph, not dynamic {want.name!r}")
                elif got.dim_value != want:
                    shown = got.dim_param or got.dim_value
                    found.append(f"{role} {spec.name!r} axis {axis} is {shown!r} in the graph, the spec says {want}")
    return found


def _pin_static_dims(model, outputs: Sequence[TensorSpec]) -> None:
    """Write the declared static sizes into graph outputs the exporter left symbolic.

    With any dynamic input axis, the TorchScript exporter names *every* output dim it cannot fold
    (``Transposeoutput_dim_1``), even those that are fixed. Pinning them makes the file say what the
    deployment relies on; strict shape inference afterwards proves the graph agrees.
    """
    declared = {t.name: t for t in outputs}
    for value in model.graph.output:
        spec = declared.get(value.name)
        if spec is None or len(value.type.tensor_type.shape.dim) != len(spec.shape):
            continue  # the signature step reports it
        for dim, want in zip(value.type.tensor_type.shape.dim, spec.shape, strict=True):  # ranks checked above
            if isinstance(want, int) and dim.dim_param and not dim.HasField("dim_value"):
                dim.dim_value = want


class _Step:
    """Context manager that turns any failure inside into an :class:`ExportError`; a check of the step's own
    fails through :meth:`fail` (the error named by its step, not an untyped exception wrapped later)."""

    def __init__(self, component: str, name: str) -> None:
        self.component, self.name = component, name

    def __enter__(self) -> _Step:
        log.debug("export %s: %s", self.component, self.name)
        return self

    def fail(self, detail: str) -> NoReturn:
        raise ExportError(self.component, self.name, detail)

    def __exit__(self, exc_type, exc, tb) -> None:
        """Never swallows: an :class:`ExportError` passes through, any other failure leaves as one."""
        if exc is not None and not isinstance(exc, ExportError):
            raise ExportError(self.component, self.name, f"{exc_type.__name__}: {exc}") from exc


def _dynamic_shapes(inputs: Sequence[TensorSpec]):
    import torch

    return tuple(
        {axis: torch.export.Dim(d.name, min=d.min, max=d.max) for axis, d in enumerate(t.shape) if isinstance(d, Dim)}
        or None
        for t in inputs
    )


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _lowest_ir_for(model) -> int:
    """The lowest IR version that supports the model's default-domain opset."""
    import onnx

    opset = _opset(model)
    candidates = [ir for _, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx == opset]
    return min(candidates) if candidates else model.ir_version


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-awml")
    except PackageNotFoundError:
        return "0+unknown"
