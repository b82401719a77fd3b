"""Artifact builders registered per format (pytest_awml.builders): the registry, the build steps,
the built-in formats, and a format added by a plugin through the hook."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import toy
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.builders import ArtifactBuilder, BuildContext, BuilderRegistry, builtin
from pytest_awml.builders.onnx import OnnxBuilder
from pytest_awml.builders.tensorrt import EngineBuilder, engine_format, options_for
from pytest_awml.device import Device, Precision
from pytest_awml.errors import ArtifactError, AwmlError, BackendUnavailable
from pytest_awml.models import component_inputs, load
from pytest_awml.workspace import Workspace
from pytest_awml.runners.tensorrt import TensorRTBackend, tensorrt_unavailable


class TextBuilder(ArtifactBuilder):
    """A format whose file is the component's name: enough to watch the build steps."""

    format = "text"

    def __init__(self) -> None:
        self.writes: list[Path] = []

    def filename(self, component):
        return f"{component.name}.txt"

    def key_parts(self, context):
        return {"component": context.component.name}

    def write(self, context, path):
        self.writes.append(path)
        path.write_text(context.label)


def _context(tmp_path, component=None, **pieces):
    """A context holding only ``pieces``: a builder that reads anything else fails (ArtifactError)."""
    return BuildContext(spec=toy.SPEC, component=component or toy.SPEC.components[0], device=Device.parse("cpu"),
                        store=ArtifactStore(tmp_path), **pieces)


def test_the_registry_by_format():
    registry = builtin()
    assert registry.names() == ["onnx", "tensorrt-fp32", "tensorrt-fp16", "tensorrt-tf32", "tensorrt-int8", "onnx-fp16", "onnx-int8",
                                "tensorrt-rtx-fp32", "tensorrt-rtx-fp16", "tensorrt-rtx-tf32", "tensorrt-rtx-int8",
                                "tensorrt-typed-fp32", "tensorrt-typed-fp16", "tensorrt-typed-tf32", "tensorrt-typed-int8"]
    assert [engine_format(p) for p in Precision] == registry.names()[1:5]
    assert TensorRTBackend().artifact_format(Precision.FP16) == "tensorrt-fp16" and isinstance(registry.get("onnx"), OnnxBuilder)
    registry.register(TextBuilder())
    with pytest.raises(AwmlError, match="the artifact format 'text' is already registered; pass replace=True"):
        registry.register(TextBuilder())
    registry.register(TextBuilder(), replace=True)
    with pytest.raises(AwmlError, match="is not a pytest_awml.builders.base.ArtifactBuilder"):
        registry.register(object())
    with pytest.raises(AwmlError, match="unknown artifact format 'pdf': registered are onnx, "):
        registry.get("pdf")
    assert isinstance(BuilderRegistry(), BuilderRegistry) and BuilderRegistry().names() == []


def test_build_writes_once_per_key_and_only_what_it_needs(tmp_path):
    builder = TextBuilder()
    first = builder.build(_context(tmp_path))
    again = builder.build(_context(tmp_path))
    assert not first.reused and again.reused and len(builder.writes) == 1
    assert first.path.name == "enc.txt" and first.path.read_text() == "toy/enc" and first.format == "text"
    other = builder.build(_context(tmp_path, component=toy.SPEC.components[1]))
    assert other.path != first.path and len(builder.writes) == 2


def test_an_unavailable_format_says_why_before_any_work(tmp_path):
    if tensorrt_unavailable() is None:
        pytest.skip("tensorrt imports here")
    with pytest.raises(BackendUnavailable, match="tensorrt not importable"):
        EngineBuilder(Precision.FP16).build(_context(tmp_path))
    assert options_for(Precision.TF32).tf32


def test_the_onnx_builder_exports_the_component(tmp_path):
    options = toy.options(tmp_path)
    loaded = load(toy.SPEC, options)
    component = toy.SPEC.components[0]
    context = _context(tmp_path, loaded=loaded, inputs=component_inputs(loaded, component))
    artifact = OnnxBuilder().build(context)
    model = onnx.load(artifact.path)
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["spec"] == "toy" and meta["weights_sha256"] == loaded.weights_sha256 and meta["component"] == "toy/enc"
    assert OnnxBuilder().build(context).reused


class FromOnnx(ArtifactBuilder):
    """Made from the ONNX file only; records the context it was given."""

    format = "from-onnx"
    requires = ("onnx",)

    def __init__(self, unavailable: str | None = None) -> None:
        self.contexts, self.unavailable = [], unavailable

    def unavailable_reason(self, device):
        return self.unavailable

    def filename(self, component):
        return component.name + ".copy"

    def key_parts(self, context):
        return {"onnx": context.artifact("onnx").sha256}

    def write(self, context, path):
        self.contexts.append(context)
        path.write_bytes(context.artifact("onnx").path.read_bytes())


def test_the_caller_resolves_what_a_builder_requires_and_nothing_else(tmp_path):
    """Resolve before you construct: the workspace builds the ONNX file an engine-like format requires and hands it
    over; the model and inputs it does not require are not in its context; a format that cannot be built here
    resolves nothing (no export for it)."""
    plan = toy.plan(tmp_path)
    builder = FromOnnx()
    plan.builders.register(builder)
    workspace = Workspace(plan, ArtifactStore(tmp_path / "artifacts"))
    component = toy.SPEC.components[0]
    copy = workspace.artifact(toy.SPEC, component, "from-onnx")
    (context,) = builder.contexts
    assert set(context.artifacts) == {"onnx"} and context.loaded is None and not context.inputs
    assert copy.path.read_bytes() == workspace.artifact(toy.SPEC, component, "onnx").path.read_bytes()
    with pytest.raises(ArtifactError, match="read the model without requiring it: add Ingredient.MODEL"):
        context.model
    with pytest.raises(ArtifactError, match="read the onnx-fp16 artifact without requiring it"):
        context.artifact("onnx-fp16")

    plan = toy.plan(tmp_path / "other")
    plan.builders.register(FromOnnx(unavailable="no such library here"))
    other = Workspace(plan, ArtifactStore(tmp_path / "other" / "artifacts"))
    with other.collector.collecting() as produced, pytest.raises(BackendUnavailable, match="no such library here"):
        other.artifact(toy.SPEC, component, "from-onnx")
    assert produced.builds == []  # the ONNX file it would need was not exported


THIRD_PARTY = """
from pytest_awml.builders import ArtifactBuilder
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend


class TextBuilder(ArtifactBuilder):
    format = "text"

    def filename(self, component):
        return component.name + ".txt"

    def key_parts(self, context):
        return {}

    def write(self, context, path):
        path.write_text(context.label)


class TextBackend(OnnxRuntimeBackend):
    name = "textual"

    def artifact_format(self, precision):
        return "text"


def pytest_awml_add_builders(registry):
    registry.register(TextBuilder())


def pytest_awml_add_backends(registry):
    registry.register(TextBackend())
"""


def test_a_plugin_adds_a_format_with_its_backend(pytester):
    pytester.makeconftest(THIRD_PARTY)
    pytester.makepyfile(toyspec="from toy import SPEC\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec=toyspec.py", "--awml-backends=textual", "-k", "test_export", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_export?toy/enc/text? PASSED*", "*test_export?toy/head/text? PASSED*"])
    assert sorted(p.read_text() for p in pytester.path.rglob("*.txt")) == ["toy/enc", "toy/head"]
