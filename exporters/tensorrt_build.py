"""ONNX file → serialized TensorRT engine, through Polygraphy's loaders (NVIDIA's tested code).

Stateless. What can be checked without TensorRT is checked first, as pure functions over the ONNX
file and the declared tensor specs: one optimization profile per component from the min/opt/max of
each dynamic dim, every dynamic graph input covered, every static dim matching. The reference
framework crashed deep inside the builder when a profile shape was absent; here the build stops
with the input and what is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporters.errors import ExportError
from exporters.plugins import registry_check
from exporters.signature import Dim, TensorSpec

log = logging.getLogger(__name__)

POLICIES = ("fp32", "fp16", "tf32", "strongly_typed")
DEFAULT_WORKSPACE_BYTES = 4 << 30  # TensorRT's own default is the whole GPU; 4 GiB bounds a CI build


@dataclass(frozen=True)
class TrtOptions:
    """A build policy as AWML names them. ``fp32`` disables TF32 (TensorRT enables it by default);
    ``strongly_typed`` takes every precision from the ONNX graph's own types."""

    policy: str = "fp32"
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES

    def problems(self) -> list[str]:
        found = []
        if self.policy not in POLICIES:
            found.append(f"policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.workspace_bytes <= 0:
            found.append(f"workspace_bytes must be > 0, got {self.workspace_bytes}")
        return found

    def key(self) -> dict:
        return {"policy": self.policy, "workspace_bytes": self.workspace_bytes}


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
        for axis, (got, want) in enumerate(zip(dims, spec.shape, strict=True)):
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


def tensorrt_unavailable() -> str | None:
    """Why ``tensorrt`` cannot be used here, or None: the one check builders and runners share."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001  ImportError, or an OSError when libnvinfer is missing
        return f"tensorrt not importable: {type(exc).__name__}: {exc}"
    return None


def plugins_missing(plugins: Sequence[str]) -> str | None:
    """Why TensorRT here cannot build a graph that carries the plugin ops ``plugins``, or None. The standard
    plugins (EfficientNMS_TRT…) live in libnvinfer_plugin, which Polygraphy's loaders initialise too."""
    if not plugins:
        return None
    reason = tensorrt_unavailable()
    if reason:
        return reason
    import tensorrt as trt

    _, missing = registry_check(trt, plugins)
    return f"TensorRT {trt.__version__} has no {', '.join(missing)} plugin in its registry" if missing else None


def engine_key_parts(onnx_sha256: str, options: TrtOptions, trt_version: str, gpu_name: str) -> dict:
    """What an engine depends on: an engine is only valid for the TensorRT version and GPU model that built it."""
    return {"onnx_sha256": onnx_sha256, **options.key(), "tensorrt": trt_version, "gpu": gpu_name}


def build_engine(onnx_path: Path, engine_path: Path, *, component: str, inputs: Sequence[TensorSpec],
                 options: TrtOptions, timing_cache: Path) -> float:
    """Build and write the engine; returns the build time in seconds.

    Polygraphy's ``network_from_onnx_path`` / ``CreateConfig`` / ``Profile`` /
    ``engine_bytes_from_network`` do the TensorRT calls; its timing cache (file-locked by
    Polygraphy) is shared across builds in the artifacts folder, so rebuilding is fast.
    """
    problems = options.problems()
    if problems:
        raise ExportError(component, "tensorrt options", "; ".join(problems))
    profile_shapes = derive_profile(component, onnx_input_shapes(onnx_path), inputs)
    try:
        import tensorrt as trt
        from polygraphy.backend.trt import CreateConfig, Profile, engine_bytes_from_network, network_from_onnx_path
    except ImportError as exc:
        raise ExportError(component, "tensorrt import", f"tensorrt not importable: {exc}") from exc
    start = time.perf_counter()
    profile = Profile()
    for name, (lo, opt, hi) in profile_shapes.items():
        profile.add(name, min=lo, opt=opt, max=hi)
    strongly_typed = options.policy == "strongly_typed"
    config = CreateConfig(
        tf32=options.policy == "tf32",
        fp16=options.policy == "fp16",
        profiles=[profile],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: options.workspace_bytes},
        load_timing_cache=str(timing_cache) if timing_cache.exists() else None,
    )
    try:
        network = network_from_onnx_path(str(onnx_path), strongly_typed=strongly_typed)
        engine = engine_bytes_from_network(network, config=config, save_timing_cache=str(timing_cache))
    except Exception as exc:  # TensorRT/Polygraphy raise many types; the step name is what helps
        raise ExportError(component, "tensorrt build", f"{type(exc).__name__}: {exc}") from exc
    if engine is None:
        raise ExportError(component, "tensorrt build", "the builder returned no engine (see TensorRT's log above)")
    engine_path.write_bytes(bytes(engine))
    seconds = time.perf_counter() - start
    log.info("built TensorRT engine for %s (%s) in %.1f s", component, options.policy, seconds)
    return seconds
