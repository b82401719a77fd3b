"""Loading specs: by name through the ``pytest_awml.specs`` entry-point group, or by file, then
validated, rebuilt from ``--awml-config``, given ``--awml-deploy-config``'s export settings and checked
against ``--awml-checkpoint``.

The plugin never imports a model package by name; a model becomes known by declaring an entry
point (``[project.entry-points."pytest_awml.specs"] mymodel = "pkg.spec:SPEC"``) or by being
passed as a file (``--awml-spec path/to/spec.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_awml import deploy_apply, static_shapes
from pytest_awml.errors import AwmlError, SpecError
from pytest_awml.models import load_model
from pytest_awml.spec import ModelSpec, validate

if TYPE_CHECKING:
    from pytest_awml.options import AwmlOptions

GROUP = "pytest_awml.specs"


def available() -> dict[str, str]:
    """Registered spec names → their entry-point value."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_all(options: AwmlOptions, rootdir: Path | None = None) -> list[ModelSpec]:
    """Every spec ``--awml-spec`` names, in order, ready for the run: a checkpoint that does not fit
    or a name given twice stops the run here, in one message."""
    specs: list[ModelSpec] = []
    for reference in options.specs:
        for spec in load(reference, rootdir=rootdir):
            if options.config is not None:
                if spec.configure is None:
                    raise AwmlError(f"spec {spec.name!r} cannot read training configs (it declares no configure); drop --awml-config")
                spec = validate(_configure(spec, options.config), origin=str(options.config))
            if options.deploy is not None:
                spec = validate(deploy_apply.apply(spec, options.deploy), origin=str(options.deploy.path))
            spec = validate(static_shapes.expand(spec), origin=reference)
            if options.checkpoint is not None:
                load_model(spec, options)
            if spec.name in {s.name for s in specs}:
                raise AwmlError(f"spec {spec.name!r} is given twice")
            specs.append(spec)
    return specs


def _configure(spec: ModelSpec, config: Path) -> ModelSpec:
    """The spec rebuilt from a training config: whatever the spec's reader meets in the file is a
    SpecError naming it (a usage error), never an internal error of the run."""
    assert spec.configure is not None  # load_all refuses --awml-config for a spec without one
    try:
        return spec.configure(config)
    except AwmlError:
        raise
    except Exception as exc:  # the spec's reader, on a file the user gave
        raise SpecError(spec.name, f"--awml-config {config}", f"rebuilding the model from it failed: {type(exc).__name__}: {exc}",
                        "fix the value the message names in the config") from exc


def load(reference: str, rootdir: Path | None = None) -> list[ModelSpec]:
    """Load the spec(s) ``reference`` names: a registered name or a ``.py`` file path."""
    if reference.endswith(".py") or "/" in reference or "\\" in reference:
        path = Path(reference)
        if not path.is_absolute() and rootdir is not None and not path.exists():
            path = rootdir / path
        return _load_file(path)
    for ep in entry_points(group=GROUP):
        if ep.name == reference:
            try:
                obj = ep.load()
            except Exception as exc:  # an import error in the user's spec module
                raise SpecError(reference, "<entry point>", f"loading {ep.value} failed: {type(exc).__name__}: {exc}",
                                "fix the import error in that module") from exc
            return [validate(_call_if_factory(obj, reference), origin=reference)]
    names = ", ".join(sorted(available())) or "none are installed"
    raise SpecError(reference, "<name>", "no spec of that name is registered",
                    f"use one of: {names}; or pass a file: --awml-spec path/to/spec.py")


def _call_if_factory(obj, reference: str):
    if isinstance(obj, ModelSpec):
        return obj
    if callable(obj):
        return obj()
    raise SpecError(reference, "<entry point>", f"points at a {type(obj).__name__}",
                    "point the entry point at a ModelSpec or a function returning one")


def _load_file(path: Path) -> list[ModelSpec]:
    if not path.is_file():
        raise SpecError(str(path), "<file>", "no such file", "give an existing spec file or a registered spec name")
    unique = "awml_user_spec_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(unique, path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(str(path), "<file>", "Python cannot load it as a module", "give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(str(path), "<file>", f"importing it failed: {type(exc).__name__}: {exc}",
                        "fix the error in the spec file") from exc
    # SPECS, else SPEC, else every ModelSpec at module level (imported ones included).
    specs = getattr(module, "SPECS", None)
    if specs is None and isinstance(getattr(module, "SPEC", None), ModelSpec):
        specs = [module.SPEC]
    if specs is None:
        specs = [v for v in vars(module).values() if isinstance(v, ModelSpec)]
    if not specs:
        raise SpecError(str(path), "<file>", "defines no ModelSpec", "define SPEC = ModelSpec(...) (or SPECS = [...]) at module level")
    return [validate(s, origin=str(path)) for s in specs]
