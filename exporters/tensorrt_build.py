"""ONNX file → serialized TensorRT or TensorRT-RTX engine, on the builder API both share. Stateless.

TensorRT proper (module ``tensorrt``) and TensorRT-RTX (PyPI ``tensorrt-rtx-cu13-libs`` + ``-bindings``, module
``tensorrt_rtx_bindings``) have the same builder API (``Builder``, ``OnnxParser``, optimization profiles,
``build_serialized_network``, timing caches), so one build path serves both and what tells them apart is data
(:class:`Flavor`): TensorRT-RTX builds without a GPU or a driver (every CI run builds real engines with it), its
networks are strongly typed (precision comes from the graph's own types: there is no fp16 flag, an fp16 engine needs
an fp16 graph), its engines run on a few compute capabilities only, and it ships no standard plugin library.
Polygraphy's loaders are not used: they import ``tensorrt``, which TensorRT-RTX does not provide, and one path on
the shared API, the one CI runs, replaces two.

What can be checked without TensorRT is checked first, as pure functions over the ONNX file and the declared tensor
specs: one optimization profile per component from the min/opt/max of each dynamic dim, every dynamic graph input
covered, every static dim matching. The reference framework crashed deep inside the builder when a profile shape was
absent; here the build stops with the input and what is missing.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from exporters.errors import ExportError
from exporters.plugins import registry_check
from exporters.signature import Dim, TensorSpec

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 4 << 30  # TensorRT's own default is the whole GPU; 4 GiB bounds a CI build
UNOWNED = "(added by the parser)"  # the owner of a network layer no ONNX node names


@dataclass(frozen=True)
class Flavor:
    """One TensorRT runtime, as data: its name (the backend's, and the prefix of its formats and build steps), the
    module it is imported as, whether it has an fp16 builder flag (TensorRT-RTX takes precision from the graph),
    whether an engine is built on (and keyed by) the GPU that runs it, the compute capabilities its engines run on
    (empty: any the runtime supports), and whether builds share a timing cache."""

    name: str
    title: str
    module: str
    package: str  # the wheel whose version keys its engines
    install: str
    fp16_flag: bool
    builds_on_gpu: bool
    capabilities: tuple[tuple[int, int], ...] = ()
    timing_cache: bool = False
    no_plugin_hint: str = ""
    # every network built with TensorRT's STRONGLY_TYPED creation flag: precision from the graph's own types, as
    # AWML's deployment framework builds for its ``strongly_typed`` precision policy
    strongly_typed: bool = False

    def unavailable(self) -> str | None:
        """Why this runtime cannot be imported here, or None: the one check builders and runners share."""
        # Any failure to import (an ImportError, an OSError of a missing library, a driver's init error) means
        # unavailable: the reason is returned and shown, never lost.
        try:
            importlib.import_module(self.module)
        except Exception as exc:  # noqa: BLE001  deliberate: see above
            return f"{self.name} not importable: {type(exc).__name__}: {exc} ({self.install})"
        return None

    def plugins_missing(self, plugins: Sequence[str]) -> str | None:
        """Why this runtime here cannot build a graph that carries the TensorRT plugin ops ``plugins``, or None."""
        if not plugins:
            return None
        reason = self.unavailable()
        if reason:
            return reason
        trt = importlib.import_module(self.module)
        registered, missing = registry_check(trt, plugins)
        if not missing:
            return None
        return (f"{self.title} {trt.__version__} has no {', '.join(missing)} plugin (its registry holds "
                f"{', '.join(registered) or 'none'}){self.no_plugin_hint}")

    def capability_problem(self, major: int, minor: int) -> str | None:
        """Why an engine cannot run on a GPU of compute capability ``major.minor``, or None."""
        if not self.capabilities or (major, minor) in self.capabilities:
            return None
        supported = ", ".join(f"{a}.{b}" for a, b in self.capabilities)
        return f"{self.title} engines cannot run on this GPU, which has compute capability {major}.{minor} (supported: {supported})"


TENSORRT = Flavor(name="tensorrt", title="TensorRT", module="tensorrt", package="tensorrt", install="pip install 'pytest-awml[tensorrt]'",
                  fp16_flag=True, builds_on_gpu=True, timing_cache=True)
# TensorRT-RTX 1.x: the compute capabilities its ComputeCapability enum names; 1.7 registers MyelinWeightsTransformPlugin
# and ROIAlign_TRT only, also after init_libnvinfer_plugins, so a graph ending in EfficientNMS_TRT parses with TensorRT
# proper and not here.
TENSORRT_RTX = Flavor(name="tensorrt-rtx", title="TensorRT-RTX", module="tensorrt_rtx_bindings", package="tensorrt-rtx-cu13-bindings",
                      install="pip install 'pytest-awml[tensorrt-rtx]'", fp16_flag=False, builds_on_gpu=False,
                      capabilities=((7, 5), (8, 0), (8, 6), (8, 9), (12, 0), (12, 1)),
                      no_plugin_hint=": build this graph with TensorRT proper (pip install 'pytest-awml[tensorrt]', on a GPU machine)")
# TensorRT proper, every network strongly typed (AWML's ``strongly_typed`` policy): no fp16 flag, an fp16 engine is built
# from the fp16 graph; TF32 stays the builder's default for a tf32 engine.
TENSORRT_TYPED = replace(TENSORRT, name="tensorrt-typed", title="TensorRT (strongly typed)", fp16_flag=False, strongly_typed=True)
FLAVORS = (TENSORRT, TENSORRT_RTX, TENSORRT_TYPED)


@dataclass(frozen=True)
class EngineOptions:
    """How to build. ``fp16`` lets layers run in half (a builder flag: TensorRT proper only); ``tf32`` lets fp32
    matmuls/convs use TF32 (TensorRT enables it by default: without ``tf32`` it is cleared, so an fp32 engine is
    fp32); ``int8`` lets TensorRT proper run a QDQ graph's pairs in int8 (its builder flag; TensorRT-RTX reads the pairs
    without one); ``strongly_typed`` takes every precision from the ONNX graph's own types."""

    fp16: bool = False
    tf32: bool = False
    int8: bool = False
    strongly_typed: bool = False
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES

    def problems(self, flavor: Flavor) -> list[str]:
        found = []
        if self.fp16 and not flavor.fp16_flag:
            found.append(f"{flavor.title} has no fp16 flag: its networks take precision from the graph (build from an fp16 graph)")
        if self.int8 and not flavor.fp16_flag:
            found.append(f"{flavor.title} has no int8 flag: its networks take int8 from the graph's QDQ pairs")
        if self.fp16 and self.strongly_typed:
            found.append("a strongly typed network takes its precision from the graph: drop fp16")
        if self.workspace_bytes <= 0:
            found.append(f"workspace_bytes must be > 0, got {self.workspace_bytes}")
        return found

    def key(self) -> dict:
        found = {"fp16": self.fp16, "tf32": self.tf32, "strongly_typed": self.strongly_typed, "workspace_bytes": self.workspace_bytes}
        return {**found, "int8": True} if self.int8 else found  # left out when off: existing engines keep their keys


ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def onnx_input_shapes(onnx_path: Path) -> dict[str, list[int | str]]:
    """Graph inputs (initializers excluded) → dims: ints, or the dim's symbolic name, or '?'."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]
    return shapes


def derive_profile(component: str, graph_inputs: Mapping[str, Sequence[int | str]], specs: Sequence[TensorSpec]) -> dict[str, ShapeTriple]:
    """One optimization profile: input name → (min, opt, max) shapes.

    Raises :class:`ExportError` (step ``tensorrt profile``) naming the input and what is missing or
    inconsistent, before any TensorRT call.
    """
    declared = {t.name: t for t in specs}
    problems = []
    for name in graph_inputs:
        if name not in declared:
            problems.append(f"graph input {name!r} has no TensorSpec: declare it with its dims (and Dim(min, opt, max) for dynamic ones)")
    for name, spec in declared.items():
        if name not in graph_inputs:
            problems.append(f"TensorSpec {name!r} names no graph input (inputs are {sorted(graph_inputs)})")
            continue
        dims = graph_inputs[name]
        if len(dims) != len(spec.shape):
            problems.append(f"input {name!r}: the graph has rank {len(dims)}, the spec {len(spec.shape)}")
            continue
        for axis, (got, want) in enumerate(zip(dims, spec.shape, strict=True)):  # ranks checked above
            if isinstance(want, Dim):
                problems += [f"input {name!r} axis {axis}: {p}" for p in want.problems()]
                if isinstance(got, int) and got > 0:
                    problems.append(f"input {name!r} axis {axis} is fixed to {got} in the graph but the spec declares it dynamic ({want.name})")
            elif not isinstance(got, int) or got <= 0:
                problems.append(f"input {name!r} axis {axis} is dynamic ({got}) in the graph but the spec gives no min/opt/max: "
                                f"declare it as Dim(name, min, opt, max)")
            elif got != want:
                problems.append(f"input {name!r} axis {axis} is {got} in the graph, the spec says {want}")
    if problems:
        raise ExportError(component, "tensorrt profile", "; ".join(problems))
    return {name: (spec.at("min"), spec.at("opt"), spec.at("max")) for name, spec in declared.items()}


def engine_key_parts(onnx_sha256: str, options: EngineOptions, version: str, gpu_name: str | None) -> dict:
    """What an engine depends on: the graph, the options and the runtime's version; for a runtime that builds on the
    GPU that runs it, that GPU's model too (such an engine is valid only there)."""
    return {"onnx_sha256": onnx_sha256, **options.key(), "version": version, **({"gpu": gpu_name} if gpu_name else {})}


@dataclass(frozen=True)
class OpCoverage:
    """What the parser made of the graph: ONNX op counts, the nodes it rejected, which layers each node became."""

    onnx_ops: dict[str, int]
    rejected: tuple[dict, ...]
    layers: int
    node_layers: dict[str, list[str]]

    def as_record(self) -> dict:
        return {"onnx_ops": self.onnx_ops, "rejected": list(self.rejected), "layers": self.layers,
                "node_layers": self.node_layers}


@dataclass(frozen=True)
class EngineLayers:
    """An engine's layers and the ONNX nodes each holds (a fused layer several). ``source``: the engine inspector's
    list (``ProfilingVerbosity.DETAILED``), or, where the runtime cannot load the engine here (TensorRT-RTX on a
    machine without a GPU), the parsed network's layers before the builder fused them, with the reason."""

    source: str
    layers: tuple[tuple[str, tuple[str, ...]], ...]  # (layer name, ONNX node names)


_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


def _nodes_of(name: str, metadata: str, nodes: Sequence[str]) -> tuple[str, ...]:
    """The ONNX nodes in one layer: from the parser's metadata (``[ONNX Layer: /a/Conv]`` per node) when the layer
    carries it, else from its name (``/a/Conv + /a/Relu`` for a fused one; a node's name prefixes its layers')."""
    found = _ONNX_LAYER.findall(metadata or "")
    if found:
        return tuple(dict.fromkeys(found))
    by_length = sorted(nodes, key=len, reverse=True)
    owners = (next((n for n in by_length if part == n or part.startswith(n)), None) for part in name.split(" + "))
    return tuple(dict.fromkeys(o for o in owners if o is not None))


def engine_layers(trt, serialized, network, onnx_nodes: Sequence[str]) -> EngineLayers:
    """The engine's own layers through its inspector where the runtime loads it here, else the network's."""
    import json

    runtime_logger = trt.Logger(trt.Logger.INTERNAL_ERROR)  # on a machine without a GPU deserializing fails: said below
    engine = None
    try:
        engine = trt.Runtime(runtime_logger).deserialize_cuda_engine(serialized)
    except Exception as exc:  # noqa: BLE001  a runtime without a device may raise instead of returning None: the network's layers then
        log.debug("the engine cannot be loaded here: %s", exc)
    if engine is not None:
        info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
        layers = []
        for layer in info.get("Layers", []):
            name = layer if isinstance(layer, str) else str(layer.get("Name", ""))
            metadata = "" if isinstance(layer, str) else str(layer.get("Metadata", ""))
            layers.append((name, _nodes_of(name, metadata, onnx_nodes)))
        return EngineLayers("engine inspector", tuple(layers))
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layers.append((layer.name, _nodes_of(layer.name, layer.metadata, onnx_nodes)))
    return EngineLayers(f"network (the {trt.__name__} runtime cannot load the engine on this machine: layers before fusion)",
                        tuple(layers))


@dataclass(frozen=True)
class BuildReport:
    """One build's figures; returned, never kept by the builder."""

    path: Path
    seconds: float
    size_bytes: int
    version: str
    warnings: tuple[str, ...] = ()
    coverage: OpCoverage | None = None
    profile: dict = field(default_factory=dict)
    layers: EngineLayers | None = None


def _logger(trt, warnings: list[str]):
    class Collector(trt.ILogger):
        """Keeps the builder's warnings and errors for the report; logs the rest at debug."""

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.WARNING:
                warnings.append(f"{severity.name}: {msg}")
            else:
                log.debug("tensorrt: %s", msg)

    collector = Collector()
    trt.ILogger.__init__(collector)
    return collector


def _coverage(onnx_path: Path, network, parser) -> OpCoverage:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    rejected = tuple({"node": e.node_name(), "op": e.node_operator(), "error": e.desc()}
                     for e in (parser.get_error(i) for i in range(parser.num_errors)))
    names = sorted((n.name for n in graph.node if n.name), key=len, reverse=True)
    node_layers: dict[str, list[str]] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i).name
        # the parser names a layer after its ONNX node, with a suffix when one node becomes several
        owner = next((n for n in names if layer == n or layer.startswith(n)), UNOWNED)
        node_layers.setdefault(owner, []).append(layer)
    return OpCoverage(ops, rejected, network.num_layers, node_layers)


def _read_timing_cache(config, path: Path) -> None:
    """The shared timing cache (so rebuilding is fast), created empty when there is none or it cannot be read."""
    data = path.read_bytes() if path.exists() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=True):  # a cache from another version/GPU: start afresh
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=True)


def _write_timing_cache(config, path: Path) -> None:
    """Write the cache whole or not at all (xdist workers build side by side: the last complete one wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(tmp, path)


def build_engine(onnx_path: Path, engine_path: Path, *, flavor: Flavor, component: str, inputs: Sequence[TensorSpec],
                 options: EngineOptions, timing_cache: Path | None = None) -> BuildReport:
    """Parse ``onnx_path``, build with one optimization profile from ``inputs``' dims, write the engine.

    The profile is derived and checked before the runtime is touched (``tensorrt profile`` step); a graph the parser
    rejects fails at ``<flavor> parse`` with every rejected node named. ``timing_cache`` (a flavor with one): the file
    builds share under the artifacts folder.
    """
    problems = options.problems(flavor)
    if problems:
        raise ExportError(component, f"{flavor.name} options", "; ".join(problems))
    profile_shapes = derive_profile(component, onnx_input_shapes(onnx_path), inputs)
    reason = flavor.unavailable()
    if reason:
        raise ExportError(component, f"{flavor.name} import", reason)
    trt = importlib.import_module(flavor.module)
    warnings: list[str] = []
    logger = _logger(trt, warnings)
    trt.init_libnvinfer_plugins(logger, "")  # a graph with plugin nodes (EfficientNMS_TRT) parses to their creators
    start = time.perf_counter()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if options.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_path))
    coverage = _coverage(onnx_path, network, parser)
    if not parsed:
        lines = "; ".join(f"{r['node']} ({r['op']}): {r['error']}" for r in coverage.rejected) or "; ".join(warnings)
        raise ExportError(component, f"{flavor.name} parse", f"the parser rejected {len(coverage.rejected)} node(s): {lines}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector then lists each layer's ONNX nodes
    if options.tf32:
        config.set_flag(trt.BuilderFlag.TF32)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    cache_file = timing_cache if flavor.timing_cache else None
    if cache_file is not None:
        _read_timing_cache(config, cache_file)
    profile = builder.create_optimization_profile()  # static inputs too: min = opt = max
    for name, (lo, opt, hi) in profile_shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(component, f"{flavor.name} build", "the builder returned no engine: " + ("; ".join(warnings[-5:]) or "no message"))
    engine_path.write_bytes(bytes(engine))
    if cache_file is not None:
        _write_timing_cache(config, cache_file)
    seconds = time.perf_counter() - start
    log.info("built %s engine for %s in %.2f s (%d layers)", flavor.title, component, seconds, coverage.layers)
    layers = engine_layers(trt, engine, network, [node for node in coverage.node_layers if node != UNOWNED])
    return BuildReport(engine_path, seconds, engine_path.stat().st_size, trt.__version__, tuple(warnings), coverage,
                       {name: [list(s) for s in triple] for name, triple in profile_shapes.items()}, layers)
