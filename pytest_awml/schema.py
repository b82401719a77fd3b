"""A consumer's JSON Schema (``--awml-autoware-schema``), read once and applied offline.

The schema is read when the run is configured: a file that is not JSON, not an object (or boolean)
schema, not valid against its own metaschema, or that names a ``$ref`` outside itself is a usage error
before any test runs, not a traceback at the end of a bundle test. Validation uses jsonschema with a
``referencing`` registry that holds this schema alone and retrieves nothing: left to itself, jsonschema
fetches a remote ``$ref`` over the network (a CI job hanging on a firewall, or checking against
whatever the URL serves that day). jsonschema is imported only here, and only when a schema is given.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from pytest_awml.errors import AwmlError
from pytest_awml.json_input import REASON, read_json

FOLDER_FILE = "ml_package.schema.json"
"""The schema's file when the option names a folder (the layout of an Autoware package's ``schema/``)."""
FLAG = "--awml-autoware-schema"


@dataclass(frozen=True)
class Schema:
    path: Path
    document: Any  # a JSON object, or a boolean schema
    validator: Any = field(compare=False, repr=False)  # jsonschema's, over the offline registry: built once, in load

    @classmethod
    def of(cls, path: Path, document: Any) -> Schema:
        """``document`` as a schema named by ``path``, unchecked (:func:`load` checks a file first)."""
        return cls(path, document, _validator(document, _registry(document)))

    def problems(self, instance: Any) -> list[str]:
        """Where ``instance`` breaks the schema (``<file>: <path>: <message>``), none when it holds."""
        from referencing.exceptions import Unresolvable

        try:
            return [f"{self.path.name}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                    for e in self.validator.iter_errors(instance)]
        except Unresolvable as exc:  # load refuses outside references; this is the registry's own refusal
            raise AwmlError(f"{FLAG} {self.path}: {exc}: the schema is checked offline; inline what it references") from None


def load(path: Path) -> Schema:
    """The schema at ``path`` (a file, or a folder holding ``FOLDER_FILE``), checked as a schema; read once per
    process while the file is unchanged (configure reads it, the bundle test gets the same)."""
    path = Path(path) / FOLDER_FILE if Path(path).is_dir() else Path(path)
    try:
        stat = path.stat()
    except OSError:
        return _load(path, None)  # says why it cannot be read
    return _load(path, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _load(path: Path, version: tuple[int, int] | None) -> Schema:
    """``version`` (the file's mtime and size) only keys the cache: an edited file is read again."""
    try:
        from jsonschema.exceptions import SchemaError
    except ImportError as exc:
        raise AwmlError(f"{FLAG} needs jsonschema ({exc}): pip install jsonschema") from None
    document = read_json(path, f"{FLAG} {path} is not a readable JSON file ({REASON}): give the consumer's JSON Schema file")
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
    registry = _registry(document)
    validator = _validator(document, registry)
    try:
        type(validator).check_schema(document)
    except SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top)"
        raise AwmlError(f"{FLAG} {path} is not a valid JSON Schema (at {where}: {exc.message}): "
                        "give the consumer's JSON Schema file") from None
    from referencing.exceptions import Unresolvable

    resolver = registry.resolver()
    for ref, scope in refs:
        try:
            resolver.lookup(urljoin(scope, ref))
        except Unresolvable:
            raise AwmlError(f"{FLAG} {path}: $ref {ref} points to nothing in the file: give the consumer's JSON Schema file "
                            "as it is (whole)") from None
    return Schema(path, document, validator)


def _validator(document: Any, registry: Any):
    """jsonschema's validator for the schema's dialect (draft 7 when it names none), over ``registry`` (``_registry``)."""
    from jsonschema import Draft7Validator, validators

    return validators.validator_for(document, default=Draft7Validator)(document, registry=registry)


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
