"""ONNX file → serialized TensorRT-RTX engine, built on the CPU. Stateless.

TensorRT-RTX (PyPI ``tensorrt-rtx-cu13-libs`` + ``-bindings``, module ``tensorrt_rtx_bindings``) has
TensorRT 10's builder API (Builder, OnnxParser, optimization profiles, ``build_serialized_network``)
and builds without a GPU or a driver, so every CI run can build real engines from the exported
graphs. Its networks are strongly typed: precision comes from the graph's own types (an fp16 engine
needs an fp16 graph; there is no fp16 builder flag), TF32 is a builder flag. Its engines run on
compute capability 7.5/8.0/8.6/8.9/12.x, not on 9.0 (H100/H200).

Polygraphy's loaders are not used here although ``tensorrt_build`` uses them for TensorRT proper:
they import the ``tensorrt`` module, which TensorRT-RTX does not provide. The profile derivation and
its checks are ``tensorrt_build``'s, shared, so both builders refuse the same bad profiles by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exporters.errors import ExportError
from exporters.plugins import registry_check
from exporters.signature import TensorSpec
from exporters.tensorrt_build import DEFAULT_WORKSPACE_BYTES, derive_profile, onnx_input_shapes

log = logging.getLogger(__name__)

MODULE = "tensorrt_rtx_bindings"
# Compute capabilities TensorRT-RTX 1.x can target, as its ComputeCapability enum names them.
SUPPORTED_CAPABILITIES = ((7, 5), (8, 0), (8, 6), (8, 9), (12, 0), (12, 1))


def rtx_unavailable() -> str | None:
    """None when TensorRT-RTX's bindings import here, else why not (with how to install them)."""
    try:
        __import__(MODULE)
    except Exception as exc:  # noqa: BLE001  ImportError, or an OSError when its libraries cannot load
        return f"tensorrt-rtx not importable: {type(exc).__name__}: {exc} (pip install 'pytest-awml[tensorrt-rtx]')"
    return None


def plugins_missing(plugins: Sequence[str]) -> str | None:
    """Why TensorRT-RTX here cannot build a graph that carries the TensorRT plugin ops ``plugins``, or None.

    TensorRT-RTX ships no standard plugin library: 1.7 registers MyelinWeightsTransformPlugin and
    ROIAlign_TRT only, also after ``init_libnvinfer_plugins``, so a graph ending in EfficientNMS_TRT parses
    with TensorRT proper and not here."""
    if not plugins:
        return None
    reason = rtx_unavailable()
    if reason:
        return reason
    trt = __import__(MODULE)
    registered, missing = registry_check(trt, plugins)
    if not missing:
        return None
    return (f"TensorRT-RTX {trt.__version__} has no {', '.join(missing)} plugin (its registry holds {', '.join(registered) or 'none'}): "
            "build this graph with TensorRT proper (pip install 'pytest-awml[tensorrt]', on a GPU machine)")


def capability_problem(major: int, minor: int) -> str | None:
    """Why a TensorRT-RTX engine cannot run on a GPU of compute capability ``major.minor``, or None."""
    if (major, minor) in SUPPORTED_CAPABILITIES:
        return None
    supported = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_CAPABILITIES)
    return f"TensorRT-RTX engines cannot run on this GPU, which has compute capability {major}.{minor} (supported: {supported})"


@dataclass(frozen=True)
class RtxOptions:
    """How to build: ``tf32`` lets fp32 matmuls/convs use TF32 (the graph's types decide the rest)."""

    tf32: bool = False
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES

    def problems(self) -> list[str]:
        return [] if self.workspace_bytes > 0 else [f"workspace_bytes must be > 0, got {self.workspace_bytes}"]

    def key(self) -> dict:
        return {"tf32": self.tf32, "workspace_bytes": self.workspace_bytes}


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
class RtxBuildReport:
    """One build's figures; returned, never kept by the builder."""

    path: Path
    seconds: float
    size_bytes: int
    version: str
    warnings: tuple[str, ...] = ()
    coverage: OpCoverage | None = None
    profile: dict = field(default_factory=dict)


def _logger(trt, warnings: list[str]):
    class Collector(trt.ILogger):
        """Keeps the builder's warnings and errors for the report; logs the rest at debug."""

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.WARNING:
                warnings.append(f"{severity.name}: {msg}")
            else:
                log.debug("tensorrt-rtx: %s", msg)

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
        owner = next((n for n in names if layer == n or layer.startswith(n)), "(added by the parser)")
        node_layers.setdefault(owner, []).append(layer)
    return OpCoverage(ops, rejected, network.num_layers, node_layers)


def build_rtx_engine(onnx_path: Path, engine_path: Path, *, component: str, inputs: Sequence[TensorSpec],
                     options: RtxOptions) -> RtxBuildReport:
    """Parse ``onnx_path``, build with one optimization profile from ``inputs``' dims, write the engine.

    The profile is derived and checked before TensorRT-RTX is touched (``tensorrt profile`` step);
    a graph the parser rejects fails at ``tensorrt-rtx parse`` with every rejected node named.
    """
    problems = options.problems()
    if problems:
        raise ExportError(component, "tensorrt-rtx options", "; ".join(problems))
    profile_shapes = derive_profile(component, onnx_input_shapes(onnx_path), inputs)
    reason = rtx_unavailable()
    if reason:
        raise ExportError(component, "tensorrt-rtx import", reason)
    trt = __import__(MODULE)
    warnings: list[str] = []
    logger = _logger(trt, warnings)
    start = time.perf_counter()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_path))
    coverage = _coverage(onnx_path, network, parser)
    if not parsed:
        lines = "; ".join(f"{r['node']} ({r['op']}): {r['error']}" for r in coverage.rejected) or "; ".join(warnings)
        raise ExportError(component, "tensorrt-rtx parse", f"the parser rejected {len(coverage.rejected)} node(s): {lines}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    if options.tf32:
        config.set_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()  # static inputs too: min = opt = max
    for name, (lo, opt, hi) in profile_shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(component, "tensorrt-rtx build", "the builder returned no engine: " + ("; ".join(warnings[-5:]) or "no message"))
    engine_path.write_bytes(bytes(engine))
    seconds = time.perf_counter() - start
    log.info("built TensorRT-RTX engine for %s in %.2f s (%d layers)", component, seconds, coverage.layers)
    return RtxBuildReport(engine_path, seconds, engine_path.stat().st_size, trt.__version__, tuple(warnings), coverage,
                          {name: [list(s) for s in triple] for name, triple in profile_shapes.items()})
