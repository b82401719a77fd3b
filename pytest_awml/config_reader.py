"""Reading mmengine-style config files (AWML's training configs, ``--awml-config``; its deploy configs,
``--awml-deploy-config``) without running them.

mmengine's ``Config`` reads the file when it is installed (it trained the model and knows every config
feature), with ``custom_imports`` left unimported: reading values needs none of them, and AWML's
(``projects.<Model>.models``…) exist only in an AWML checkout. Without mmengine, a restricted evaluator
reads the file with mmengine's semantics for what AWML's configs use: ``_base_`` chains (bases read first,
their variables reachable as ``_base_.x`` and ``{{_base_.x}}``, the child merged into them key by key unless
``_delete_=True``; a package's own base, ``mmpretrain::_base_/models/resnet18.py``, from that package's
``.mim/configs`` with its ``_scope_``, or named in a note and skipped where the package is absent),
assignments and augmented assignments to names and subscripts, ``if`` blocks, literals, ``dict()``/
``list()``…, arithmetic and shifts (``1 << 30``), comparisons, f-strings, ``%`` and ``str.format`` and the
string methods deploy configs call (``.rstrip('/')``). Nothing in the file is executed or imported; anything
beyond that subset is refused with a message that names the line.

The reader is bounded BEFORE it works (:mod:`pytest_awml.config_bounds`): an operation's result size is
predicted from its operands (a repetition, a concatenation, ``sum`` of lists, a formatted string's width and
precision, an integer's bits), a walk over shared items (printing or comparing ``[x] * 60000``) is counted as
it goes, and the whole file's work is charged to one budget; a file over :data:`MAX_CONFIG_BYTES` is not
parsed. Every error is a :class:`SpecError` naming the option and the file.

A ``_base_`` that does not exist is the file's own fault, not the reader's: the message says the config is
broken upstream, names the missing path and a file that matches it but for letter case (which a
case-insensitive file system would have found).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_awml import config_bounds as bounds
from pytest_awml.config_bounds import MAX_EXPONENT, MAX_INT_BITS, MAX_ITEMS, Budget, Refused
from pytest_awml.config_eval import BASE_KEY, NEEDS_MMENGINE, Evaluator
from pytest_awml.errors import SpecError

__all__ = ["MAX_CONFIG_BYTES", "MAX_EXPONENT", "MAX_INT_BITS", "MAX_ITEMS", "ConfigFile", "TrainingConfig", "names_read", "read_config"]

log = logging.getLogger(__name__)

# AWML's largest config file is ~30 KB (its largest model's ~15 KB); a file 4x that is not a config, and
# parsing it would take a noticeable part of a second.
MAX_CONFIG_BYTES = 1 << 17
# What evaluating a bad but parsable expression can raise (1 < "a", int("x"), -"a", a deep nest).
_EVALUATION_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
                      RecursionError, MemoryError)
DELETE_KEY = "_delete_"
_BASE_VARIABLE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}")
PACKAGE_SEPARATOR, SCOPE_KEY = "::", "_scope_"
# where mmengine looks for a package's own configs (``mim`` installs them under .mim)
PACKAGE_CONFIG_DIRS = (Path(".mim") / "configs", Path("configs"))
TRAINING = ("training config", "--awml-config")  # (what the file is, the option that named it)


@dataclass(frozen=True)
class ConfigFile:
    """A config file's variables (bases merged) and what reading it left out."""

    path: Path
    values: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    layers: tuple[tuple[Path, Mapping[str, Any]], ...] = ()  # each file's own values, bases first (the restricted reader's)

    def with_model(self, **sections: Mapping[str, Any]) -> ConfigFile:
        """This config with model sections changed key by key, as a child config that names them would."""
        return ConfigFile(self.path, _merge(dict(self.values), {"model": sections}), self.notes,
                          (*self.layers, (self.path, {"model": sections})))

    def source_of(self, *keys: str) -> Path:
        """The file that set ``values[keys[0]][keys[1]]...``: the last of the chain whose own values hold that key
        (a base's value a child copies by ``_base_.x`` counts as the child's); the config itself when unknown."""
        for path, values in reversed(self.layers):
            node: Any = values
            for key in keys:
                if not isinstance(node, Mapping) or key not in node:
                    break
                node = node[key]
            else:
                return path
        return self.path


TrainingConfig = ConfigFile  # the name the specs' readers know it by


def read_config(path: Path, kind: tuple[str, str] = TRAINING) -> ConfigFile:
    """``path``'s values, bases merged; ``kind`` is (what the file is, the option that named it) for messages."""
    path = Path(path)
    if not path.is_file():
        raise _fail(kind, path, "no such file", f"give the path of the {kind[0]} (.py)")
    _check_size(kind, path)
    _check_bases(kind, path, ())
    try:
        from mmengine import Config
    except ImportError:
        return _read_restricted(kind, path)
    try:
        values = Config.fromfile(str(path), import_custom_modules=False).to_dict()
    except ModuleNotFoundError as exc:  # a ``pkg::`` base of a package absent here: the reader notes and skips it
        log.info("%s: mmengine cannot read %s (%s); reading it without mmengine", kind[1], path, exc)
        return _read_restricted(kind, path)
    except (SyntaxError, OSError, KeyError, ValueError, TypeError, NameError, AttributeError) as exc:
        raise _fail(kind, path, f"mmengine cannot read it: {type(exc).__name__}: {exc}", "fix the config file") from None
    return ConfigFile(path, values, _absent_custom_imports(kind, values))


def names_read(path: Path, kind: tuple[str, str] = TRAINING) -> frozenset[str]:
    """The variables ``path`` itself reads (its helper variables, such as a class count its profiles use)."""
    return frozenset(node.id for node in ast.walk(_parse(kind, Path(path)))
                     if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))


def _fail(kind: tuple[str, str], path: Path, problem: str, fix: str = NEEDS_MMENGINE) -> SpecError:
    return SpecError(kind[0], f"{kind[1]} {path}", problem, fix)


def _check_size(kind: tuple[str, str], path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise _fail(kind, path, f"{size} bytes, over the {MAX_CONFIG_BYTES} a {kind[0]} can be", f"give the {kind[0]} (.py)")


def _parse(kind: tuple[str, str], path: Path) -> ast.Module:
    """The file's syntax tree, parsed once however often a read meets it (the bases check, the reader)."""
    stat = path.stat()
    return _parsed(kind, path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _parsed(kind: tuple[str, str], path: Path, mtime_ns: int, size: int) -> ast.Module:
    # mmengine turns {{_base_.x}} into a placeholder before parsing; here it becomes _base_.x
    text = _BASE_VARIABLE.sub(lambda m: f"{BASE_KEY}.{m.group(1)}", path.read_text(errors="replace"))
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise _fail(kind, path, f"line {exc.lineno}: syntax error: {exc.msg}", "fix the config file") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # nesting past the parser's limits; NUL bytes
        raise _fail(kind, path, f"cannot be parsed: {type(exc).__name__}: {exc}", "fix the config file") from None


def _base_statements(tree: ast.Module) -> list[ast.Assign]:
    return [s for s in tree.body if isinstance(s, ast.Assign) and [getattr(t, "id", None) for t in s.targets] == [BASE_KEY]]


def _check_bases(kind: tuple[str, str], path: Path, chain: tuple[Path, ...]) -> None:
    """Every file-relative ``_base_`` of ``path`` (and theirs) exists, before any reader (mmengine's or this
    one) meets a missing one deep in a chain and says something less useful. Only literal lists are followed:
    a computed one is the evaluator's to check."""
    resolved = path.resolve()
    if resolved in chain:
        raise _fail(kind, path, f"_base_ includes itself ({' -> '.join(p.name for p in (*chain, resolved))})", "fix the config file")
    for statement in _base_statements(_parse(kind, path)):
        try:
            names = ast.literal_eval(statement.value)
        except ValueError:
            continue
        for name in [names] if isinstance(names, str) else names if isinstance(names, (list, tuple)) else ():
            if isinstance(name, str) and PACKAGE_SEPARATOR not in name:
                base = path.parent / name
                if not base.is_file():
                    raise _broken_base(kind, path, statement.lineno, name, base)
                _check_size(kind, base)
                _check_bases(kind, base, (*chain, resolved))


def _broken_base(kind: tuple[str, str], path: Path, line: int, name: str, base: Path) -> SpecError:
    """A ``_base_`` that names no file: the config is broken where it came from; say what is missing, and a
    file that matches it but for letter case (a case-insensitive file system finds that one) or for letter case
    and word separators (``t4dataset_DynamicRecognition.py`` for ``t4dataset_dynamic_recognition.py``)."""
    base = Path(os.path.normpath(base))  # shown without its ../ steps
    problem = (f"line {line}: _base_ {name!r} names {base}, which does not exist: the config is broken upstream "
               f"(the base was deleted or renamed)")
    near = _near_match(base, _case_key)
    loose = near is None and _near_match(base, _loose_key)
    if near is not None:
        problem += f"; {near} differs from it only by letter case (a case-insensitive file system finds it, this one does not)"
    elif loose:
        near = loose
        problem += f"; {near} differs from it only by letter case and '_'/'-' (probably the file it was renamed to)"
    if near is not None:
        fix = f"point _base_ at {near}, or report it to the config's authors; installing mmengine would not help"
    else:
        fix = "restore the base from the config's history, or report it to the config's authors; installing mmengine would not help"
    return _fail(kind, path, problem, fix)


def _case_key(name: str) -> str:
    return name.lower()


def _loose_key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _near_match(path: Path, key: Callable[[str], str]) -> Path | None:
    """The existing file ``path`` names when each component is compared by ``key`` (letter case, separators), or None."""
    found = Path(path.anchor) if path.is_absolute() else Path(".")
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        if part in ("..", "."):
            found = found / part
            continue
        exact = found / part
        if exact.exists():
            found = exact
            continue
        try:
            entries = sorted(entry for entry in found.iterdir() if key(entry.name) == key(part))
        except OSError:
            return None
        if not entries:
            return None
        found = entries[0]
    return found if found.is_file() else None


def _read_restricted(kind: tuple[str, str], path: Path) -> ConfigFile:
    reader = _Reader(path, kind=kind)
    try:
        values = reader.read()
    except _EVALUATION_ERRORS as exc:  # what the checks on each node did not foresee is still the file's fault
        raise _fail(kind, path, f"cannot be read: {type(exc).__name__}: {str(exc)[:200]}", "fix the config file") from None
    for note in reader.notes:
        log.warning("%s: %s", kind[1], note)
    return ConfigFile(path, values, (*reader.notes, *_absent_custom_imports(kind, values)), tuple(reader.layers))


def _absent_custom_imports(kind: tuple[str, str], values: Mapping[str, Any]) -> tuple[str, ...]:
    """A note naming the ``custom_imports`` modules absent here: the reader never imports them,
    and only the model types they would register could matter (each spec checks those by name)."""
    custom = values.get("custom_imports") or {}
    imports = (custom.get("imports") if isinstance(custom, dict) else None) or []
    absent = [name for name in imports if isinstance(name, str) and importlib.util.find_spec(name.split(".")[0]) is None]
    if not absent:
        return ()
    note = f"custom_imports not imported (not installed here): {', '.join(absent)}"
    log.warning("%s: %s", kind[1], note)
    return (note,)


class _Reader(Evaluator):
    """mmengine's config semantics for the subset AWML's configs use: the file, its ``_base_`` chain and its merge,
    each file's statements evaluated without exec (:class:`~pytest_awml.config_eval.Evaluator`)."""

    def __init__(self, path: Path, chain: tuple[Path, ...] = (), kind: tuple[str, str] = TRAINING,
                 budget: Budget | None = None) -> None:
        self.path, self.kind = path.resolve(), kind
        if self.path in chain:
            raise self.fail(f"_base_ includes itself ({' -> '.join(p.name for p in (*chain, self.path))})")
        self.chain = (*chain, self.path)
        super().__init__(budget or Budget())  # one budget for a file and all its bases
        self.notes: list[str] = []
        self.layers: list[tuple[Path, Mapping[str, Any]]] = []  # each file's own values, bases first

    def fail(self, problem: str, fix: str = NEEDS_MMENGINE) -> SpecError:
        return _fail(self.kind, self.path, problem, fix)

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            raise self.fail("no such file (named in a _base_ list)" if len(self.chain) > 1 else "no such file")
        _check_size(self.kind, self.path)
        tree = _parse(self.kind, self.path)
        for statement in _base_statements(tree):  # mmengine reads every base before running the child
            self._read_bases(statement)
        self.run(tree.body)
        self._bounded_whole(self.scope, "the file's values")
        self.layers.append((self.path, self.scope))
        return _merge(self.base, self.scope)

    def _bounded_whole(self, values: Any, what: str) -> None:
        """Whatever reads the values next (the merge, a spec's reader, the JSON report) walks them: refuse a
        file whose values, shared items counted each time, are larger or deeper than a config's."""
        try:
            bounds.walk(values, self.budget, what)
        except Refused as exc:
            raise self.fail(str(exc), "fix the config file") from None

    def _read_bases(self, statement: ast.Assign) -> None:
        bases = self.statement_value(statement)
        for name in [bases] if isinstance(bases, str) else bases:
            if not isinstance(name, str):
                raise self.fail(f"line {statement.lineno}: _base_ holds {name!r}, not a file name", "list the base files as strings")
            if PACKAGE_SEPARATOR in name:
                values = self._package_base(name)
            else:
                base = self.path.parent / name
                if not base.is_file():
                    raise _broken_base(self.kind, self.path, statement.lineno, name, base)
                reader = _Reader(base, self.chain, self.kind, self.budget)
                values = reader.read()
                self.notes += reader.notes
                self.layers += reader.layers
            repeated = sorted(set(values) & set(self.base))
            if repeated:
                raise self.fail(f"_base_ files define the same key(s) {repeated} (mmengine refuses that too)", "fix the config file")
            self.base.update(values)

    def _package_base(self, name: str) -> dict[str, Any]:
        """``package::relative/path.py`` as mmengine reads it: the package's own config file, its dicts
        that name a ``type`` scoped to the package. Absent package: a note, and nothing read."""
        package, _, relative = name.partition(PACKAGE_SEPARATOR)
        found = importlib.util.find_spec(package)  # locates the package; runs none of its code
        roots = [Path(p) for p in (found.submodule_search_locations or [])] if found is not None else []
        for candidate in (root / folder / relative for root in roots for folder in PACKAGE_CONFIG_DIRS):
            if candidate.is_file():
                reader = _Reader(candidate, self.chain, self.kind, self.budget)
                values = reader.read()
                self.notes += reader.notes
                return {key: _scoped(value, package) for key, value in values.items()}
        self.notes.append(f"_base_ {name} not read ({package} is not installed here): its values are left out, "
                          f"and a key only it sets takes the default of the class that reads it")
        return {}


def _scoped(value: Any, scope: str) -> Any:
    """mmengine's ``_scope_`` on a package base: set on the outermost dicts that name a ``type``."""
    if isinstance(value, dict):
        if "type" in value:
            return {**value, SCOPE_KEY: value.get(SCOPE_KEY, scope)}
        return {k: _scoped(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scoped(v, scope) for v in value)
    return value


def _merge(base: dict, child: dict) -> dict:
    """mmengine's inheritance: dicts merge key by key unless the child says ``_delete_=True``."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get(DELETE_KEY, False):
            out[key] = _merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != DELETE_KEY} if isinstance(value, dict) else value
    return out
