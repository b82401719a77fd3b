"""A consumer's JSON Schema (``--awml-autoware-schema``), read once and applied offline.

The schema is read when the run is configured: a file that is not JSON, not an object (or boolean)
schema, not valid against its own metaschema, or that names a ``$ref`` outside itself is a usage error
before any test runs, not a traceback at the end of a bundle test. Validation uses jsonschema with a
``referencing`` registry that holds this schema alone and retrieves nothing: left to itself, jsonschema
fetches a remote ``$ref`` over the network (a CI job hanging on a firewall, or checking against
whatever the URL serves that day). jsonschema is imported only here, and only when a schema is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from pytest_awml.errors import AwmlError

FOLDER_FILE = "ml_package.schema.json"
"""The schema's file when the option names a folder (the layout of an Autoware package's ``schema/``)."""
FLAG = "--awml-autoware-schema"


@dataclass(frozen=True)
class Schema:
    path: Path
    document: Any  # a JSON object, or a boolean schema

    def problems(self, instance: Any) -> list[str]:
        """Where ``instance`` breaks the schema (``<file>: <path>: <message>``), none when it holds."""
        from referencing.exceptions import Unresolvable

        try:
            return [f"{self.path.name}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                    for e in _validator(self.document).iter_errors(instance)]
        except Unresolvable as exc:  # load refuses outside references; this is the registry's own refusal
            raise AwmlError(f"{FLAG} {self.path}: {exc}: the schema is checked offline; inline what it references") from None


def load(path: Path) -> Schema:
    """The schema at ``path`` (a file, or a folder holding ``FOLDER_FILE``), checked as a schema."""
    try:
        from jsonschema.exceptions import SchemaError
    except ImportError as exc:
        raise AwmlError(f"{FLAG} needs jsonschema ({exc}): pip install jsonschema") from None
    path = Path(path) / FOLDER_FILE if Path(path).is_dir() else Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else (getattr(exc, "strerror", None) or exc)
        raise AwmlError(f"{FLAG} {path} is not a readable JSON file ({reason}): give the consumer's JSON Schema file") from None
    if not isinstance(document, (dict, bool)):
        raise AwmlError(f"{FLAG} {path} holds a JSON {type(document).__name__}, not a schema (an object): "
                        "give the consumer's JSON Schema file")
    if isinstance(document, dict) and not isinstance(document.get("$schema", ""), str):
        raise AwmlError(f"{FLAG} {path}: $schema is {document['$schema']!r}, not a metaschema URI: give the consumer's JSON Schema file")
    refs = sorted(set(_refs(document)))
    outside = [ref for ref, scope in refs if not _inside(ref, scope, _base(document))]
    if outside:
        raise AwmlError(f"{FLAG} {path} references {', '.join(outside)}, outside the file: the schema is checked offline "
                        "and never fetched from the network; inline the referenced definitions")
    try:
        type(_validator(document)).check_schema(document)
    except SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top)"
        raise AwmlError(f"{FLAG} {path} is not a valid JSON Schema (at {where}: {exc.message}): "
                        "give the consumer's JSON Schema file") from None
    from referencing.exceptions import Unresolvable

    resolver = _registry(document).resolver()
    for ref, scope in refs:
        try:
            resolver.lookup(urljoin(scope, ref))
        except Unresolvable:
            raise AwmlError(f"{FLAG} {path}: $ref {ref} points to nothing in the file: give the consumer's JSON Schema file "
                            "as it is (whole)") from None
    return Schema(path, document)


def _validator(document: Any):
    """jsonschema's validator for the schema's dialect (draft 7 when it names none), over ``_registry``."""
    from jsonschema import Draft7Validator, validators

    return validators.validator_for(document, default=Draft7Validator)(document, registry=_registry(document))


def _registry(document: Any):
    """The schema alone (and the resources it embeds), retrieving nothing: never the network, nor the disk."""
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource
    from referencing.jsonschema import DRAFT7

    # referencing's classes are attrs classes whose stub (_attrs.pyi) marks them with the pre-PEP 681
    # ``__dataclass_transform__``, which mypy does not read: it sees KeyError's and Mapping's constructors,
    # not these keyword arguments (referencing's documented API).
    def retrieve(uri: str):
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]

    resource = Resource.from_contents(document, default_specification=DRAFT7)
    return Registry(retrieve=retrieve).with_resource(_base(document), resource).crawl()  # type: ignore[call-arg]


def _base(document: Any) -> str:
    own = document.get("$id", "") if isinstance(document, dict) else ""
    return own if isinstance(own, str) else ""


def _inside(ref: str, scope: str, base: str) -> bool:
    """Whether ``ref`` (read in ``scope``, the nearest ``$id``) names the schema itself or a resource it embeds."""
    target, _ = urldefrag(urljoin(scope, ref))
    return target in ("", urldefrag(base)[0], urldefrag(scope)[0])


def _refs(node: Any, scope: str = "") -> Iterator[tuple[str, str]]:
    """Every ``$ref`` (and ``$dynamicRef``) with the base URI it is read against (the nearest ``$id``)."""
    if isinstance(node, dict):
        own = node.get("$id")
        scope = urljoin(scope, own) if isinstance(own, str) else scope
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value, scope
            elif key not in ("enum", "const", "examples", "default"):  # values, not schemas
                yield from _refs(value, scope)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item, scope)
