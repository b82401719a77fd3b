"""The ``onnx`` format: the component's module exported by :func:`exporters.onnx_export.export_onnx`
and checked there (checker, strict shape inference, declared signature, ONNX Runtime load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.onnx_export import export_onnx
from pytest_awml.builders.base import ArtifactBuilder, BuildContext, Ingredient
from pytest_awml.provenance import package_version
from pytest_awml.spec import Component, fingerprint

FORMAT = "onnx"


def onnx_problem(path: Path) -> str | None:
    """What ``onnx.checker`` finds wrong with the file at ``path`` (unparsable, invalid), or None."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        return f"onnx.checker: {str(exc).strip().splitlines()[0]}"
    return None


class OnnxBuilder(ArtifactBuilder):
    """Keyed on the spec's declared fields and code, the weights, and the torch, onnx and exporter versions."""

    format = FORMAT
    requires = (Ingredient.MODEL, Ingredient.INPUTS)

    def filename(self, component: Component) -> str:
        return f"{component.name}.onnx"

    def verify(self, path: Path) -> str | None:
        return onnx_problem(path)

    def onnx_graph(self) -> str | None:
        return FORMAT

    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        import torch

        return {
            "spec": fingerprint(context.spec, context.component),
            "weights": context.model.weights_sha256,
            "torch": torch.__version__,
            "onnx": package_version("onnx"),
            "exporter": package_version("pytest-awml"),
        }

    def write(self, context: BuildContext, path: Path) -> None:
        import torch

        spec, component, loaded = context.spec, context.component, context.model
        example = tuple(torch.from_numpy(context.inputs[0][t.name]) for t in component.inputs)
        metadata = {**dict(component.onnx.metadata), "spec": spec.name, "spec_hash": fingerprint(spec, component),
                    "weights_sha256": loaded.weights_sha256}
        export_onnx(component.extract(loaded.model), example, path, component=context.label, inputs=component.inputs,
                    outputs=component.outputs, options=component.onnx, metadata=metadata, plugins=component.plugins,
                    parser_plugins=component.parser_plugins)
