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
import operator
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from pytest_awml import config_bounds as bounds
from pytest_awml.config_bounds import MAX_EXPONENT, MAX_INT_BITS, MAX_ITEMS, Budget, Refused
from pytest_awml.errors import SpecError

__all__ = ["MAX_CONFIG_BYTES", "MAX_EXPONENT", "MAX_INT_BITS", "MAX_ITEMS", "ConfigFile", "TrainingConfig", "names_read", "read_config"]

log = logging.getLogger(__name__)

_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul), ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv), ast.Mod: ("%", operator.mod), ast.Pow: ("**", operator.pow),
    ast.LShift: ("<<", operator.lshift), ast.RShift: (">>", operator.rshift), ast.BitOr: ("|", operator.or_),
    ast.BitAnd: ("&", operator.and_), ast.BitXor: ("^", operator.xor)}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not}
_CALLS: dict[str, Callable[..., Any]] = {"dict": dict, "list": list, "tuple": tuple, "sum": sum, "len": len, "int": int, "float": float,
          "round": round, "min": min, "max": max, "abs": abs, "range": range, "str": str, "bool": bool}
# The string methods configs call on paths and names; each returns a string or a list of strings no longer
# than the bound the reader checks first.
_STR_METHODS = frozenset({"strip", "lstrip", "rstrip", "lower", "upper", "replace", "split", "rsplit", "join", "startswith",
                          "endswith", "format", "removeprefix", "removesuffix"})
# Mutating methods a config calls as a statement (``metainfo.update(dict(...))``) → the type they apply to.
_MUTATORS = {"update": dict, "append": list, "extend": list}
_CONVERSIONS: dict[int, Callable[[Any], Any]] = {-1: lambda v: v, ord("s"): str, ord("r"): repr, ord("a"): ascii}
# AWML's largest config file is ~30 KB (its largest model's ~15 KB); a file 4x that is not a config, and
# parsing it would take a noticeable part of a second.
MAX_CONFIG_BYTES = 1 << 17
# What evaluating a bad but parsable expression can raise (1 < "a", int("x"), -"a", a deep nest).
_EVALUATION_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
                      RecursionError, MemoryError)
BASE_KEY, DELETE_KEY = "_base_", "_delete_"
_BASE_VARIABLE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}")
PACKAGE_SEPARATOR, SCOPE_KEY = "::", "_scope_"
# where mmengine looks for a package's own configs (``mim`` installs them under .mim)
PACKAGE_CONFIG_DIRS = (Path(".mim") / "configs", Path("configs"))
TRAINING = ("training config", "--awml-config")  # (what the file is, the option that named it)
NEEDS_MMENGINE = "use a plain AWML/mmdet config, or install mmengine to read this one"
# The nodes a refusal names by line: statements and expressions (ast.AST itself has no lineno)
_Located = ast.stmt | ast.expr


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


class _Reader:
    """mmengine's config semantics for the subset AWML's configs use, evaluated without exec, every operation
    bounded from its operands first (:mod:`pytest_awml.config_bounds`)."""

    def __init__(self, path: Path, chain: tuple[Path, ...] = (), kind: tuple[str, str] = TRAINING,
                 budget: Budget | None = None) -> None:
        self.path, self.kind = path.resolve(), kind
        if self.path in chain:
            raise self.fail(f"_base_ includes itself ({' -> '.join(p.name for p in (*chain, self.path))})")
        self.chain = (*chain, self.path)
        self.budget = budget or Budget()  # one budget for a file and all its bases
        self.scope: dict[str, Any] = {}
        self.base: dict[str, Any] = {}
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

    def run(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.Assign):
                if [getattr(t, "id", None) for t in statement.targets] == [BASE_KEY]:
                    continue  # read first, in read()
                result = self.statement_value(statement.value, statement)
                for target in statement.targets:
                    self.assign(target, result)
            elif isinstance(statement, ast.AugAssign) and type(statement.op) in _BINOPS:
                current = self.statement_value(statement.target, statement)  # ctx is Store, which value() ignores
                operand = self.statement_value(statement.value, statement)
                self.assign(statement.target, self.guarded(functools.partial(self.binop, type(statement.op), current, operand, statement),
                                                           statement))
            elif isinstance(statement, ast.If):
                self.run(statement.body if self.statement_value(statement.test, statement) else statement.orelse)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring
            elif isinstance(statement, ast.Expr) and _mutation(statement.value):
                self.guarded(functools.partial(self.mutate, statement.value), statement)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                raise self.fail(f"line {statement.lineno}: imports are not read without mmengine")
            else:
                raise self.fail(f"line {statement.lineno}: {type(statement).__name__} statements are not read without mmengine")

    def statement_value(self, node: _Located, statement: _Located | None = None) -> Any:
        if isinstance(node, ast.Assign):
            statement, node = node, node.value
        return self.guarded(lambda: self.value(node), statement or node)

    def guarded(self, work: Callable[[], Any], statement: _Located) -> Any:
        """``work()``, a bound it would break turned into the file's error with the statement's line."""
        try:
            return work()
        except Refused as exc:
            raise self.fail(f"line {statement.lineno}: {ast.unparse(statement)[:60]!r}: {exc}", "fix the config file") from None

    def assign(self, target: ast.expr, result: Any) -> None:
        if isinstance(target, ast.Name):
            self.scope[target.id] = result
        elif isinstance(target, ast.Subscript):
            container = self.statement_value(target.value, target)
            if not isinstance(container, (dict, list)):
                raise self.fail(f"line {target.lineno}: cannot assign into a {type(container).__name__}")
            container[self.statement_value(target.slice, target)] = result
        else:
            raise self.fail(f"line {target.lineno}: assignments to {ast.unparse(target)!r} are not read without mmengine")

    def mutate(self, call: ast.Call) -> None:
        """``x.update(...)``, ``x.append(...)``, ``x.extend(...)`` as a statement (``metainfo.update(dict(...))``),
        the container's new size checked first."""
        if not isinstance(call.func, ast.Attribute):  # run() reaches here only through _mutation, which checked it
            raise Refused(f"{ast.unparse(call)[:60]!r} is not a method call")
        method = call.func.attr
        owner = self.value(call.func.value)
        if not isinstance(owner, _MUTATORS[method]) or (call.keywords and method != "update"):
            raise Refused(f".{method}(...) on a {type(owner).__name__} is outside the readable subset")
        args = [self.value(a) for a in call.args]
        kwargs = {k.arg: self.value(k.value) for k in call.keywords}
        added = 1 if method == "append" else sum(len(a) for a in args if isinstance(a, (dict, list, tuple))) + len(kwargs)
        self.budget.charge(added, f".{method}(...)")
        bounds.items(len(owner) + added, f".{method}(...)")
        try:
            getattr(owner, method)(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise Refused(f".{method}(...): {type(exc).__name__}: {exc}") from None

    # -- bounded operations: each predicts its size from the operands before it runs ----------------------
    def binop(self, op: type, left: Any, right: Any, node: _Located) -> Any:
        symbol, function = _BINOPS[op]
        if op is ast.Pow and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise self.fail(f"line {node.lineno}: exponent {right} is beyond what a config needs (max {MAX_EXPONENT})")
        bits = bounds.int_bits(symbol, left, right)
        if bits > MAX_INT_BITS:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r} is over {MAX_INT_BITS} bits, more than a config needs")
        if op is ast.Mult and bounds.repeated(left, right) > MAX_ITEMS:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r} would repeat a sequence past the "
                            f"{MAX_ITEMS} items a config needs")
        size = bounds.repeated(left, right) if op is ast.Mult else 0
        if op in (ast.Add, ast.BitOr):
            size = bounds.items(bounds.concatenated((left, right)) + (len(left) + len(right) if isinstance(left, dict) else 0),
                                f"{symbol!r}")
        if op is ast.Mod and isinstance(left, (str, bytes)):
            size = bounds.items(bounds.printf_size(left, right, self.budget, "'%' formatting"), "'%' formatting")
        self.budget.charge(size, f"{symbol!r}")
        try:
            return self.bounded(function(left, right), node)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {exc}") from None

    def bounded(self, value: Any, node: _Located) -> Any:
        """``value``, unless it is a number or a sequence larger than any config needs (a backstop: the
        operations above refused what they could predict)."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r} is over {MAX_INT_BITS} bits, more than a config needs")
        if isinstance(value, (str, bytes, list, tuple, range, dict)) and len(value) > MAX_ITEMS:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r} has {len(value)} items, over the "
                            f"{MAX_ITEMS} a config needs")
        return value

    def compare(self, op: type[ast.cmpop], left: Any, right: Any) -> bool:
        """Comparing containers walks them (shared items each time they are reached): count that first."""
        for side in (left, right):
            if isinstance(side, (list, tuple, dict, set, frozenset)):
                bounds.walk(side, self.budget, "a comparison")
            elif isinstance(side, (str, bytes)):
                self.budget.charge(len(side), "a comparison")
        return _COMPARE[op](left, right)

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.Call) -> Any:
        what = f"{name}(...)"
        if name == "sum" and args and isinstance(args[0], (list, tuple)):
            start = args[1] if len(args) > 1 else kwargs.get("start", 0)
            parts = [start, *args[0]]
            total = bounds.items(bounds.concatenated(parts), what)
            # each step copies what came before: n parts of a total length cost up to n * total
            self.budget.charge(len(parts) * total if isinstance(start, (list, tuple, str)) else len(parts), what)
        elif name == "str" and args:
            bounds.items(bounds.rendered(args[0], self.budget, what), what)
        elif name in ("min", "max") and args:
            bounds.walk(args if len(args) > 1 else args[0], self.budget, what)
        elif name == "round" and len(args) > 1 and isinstance(args[1], int) and abs(args[1]) > MAX_EXPONENT:
            raise Refused(f"{what}: {args[1]} digits is beyond what a config needs (max {MAX_EXPONENT})")
        elif name in ("list", "tuple", "dict") and args and isinstance(args[0], (str, bytes, list, tuple, dict)):
            self.budget.charge(len(args[0]), what)
        elif name == "range":
            pass  # a range is made lazily; bounded() refuses one too long before list() makes it
        try:
            result = self.bounded(_CALLS[name](*args, **kwargs), node)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None
        if isinstance(result, range):
            self.budget.charge(len(result), what)
            return list(result)
        return result

    def string_method(self, owner: str, method: str, args: list[Any], kwargs: dict[str, Any], node: ast.Call) -> Any:
        what = f".{method}(...)"
        if method == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
            self.budget.charge(len(owner), what)
            count = owner.count(args[0]) if args[0] else len(owner) + 1
            bounds.items(len(owner) + count * max(len(args[1]) - len(args[0]), 0), what)
        elif method == "join" and args and isinstance(args[0], (list, tuple)):
            bounds.items(bounds.concatenated(args[0]) + len(owner) * max(len(args[0]) - 1, 0), what)
        elif method == "format":
            return self.formatted(owner, args, kwargs)
        self.budget.charge(len(owner), what)
        try:
            return self.bounded(getattr(owner, method)(*args, **kwargs), node)
        except (TypeError, ValueError) as exc:
            raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None

    def formatted(self, template: str, args: list[Any], kwargs: dict[str, Any]) -> str:
        """``template.format(*args, **kwargs)`` for plain fields, each field's size bounded before it is made."""
        pieces: list[str] = []
        auto, numbered = 0, False
        key: int | str
        for literal, name, spec, conversion in bounds.format_fields(template, "str.format"):
            pieces.append(literal)
            if name is None:
                continue
            if (name == "" and numbered) or (name.isdigit() and auto):
                raise Refused("str.format: cannot switch between automatic and manual field numbering")
            if name == "":
                key, auto = auto, auto + 1
            else:
                key, numbered = (int(name), True) if name.isdigit() else (name, numbered)
            try:
                value = args[key] if isinstance(key, int) else kwargs[key]
            except (IndexError, KeyError):
                raise Refused(f"str.format: no value for field {{{name}}}") from None
            pieces.append(self.field(value, spec or "", conversion, "str.format"))
        return "".join(pieces)

    def field(self, value: Any, spec: str, conversion: str | int | None, what: str) -> str:
        """One formatted field (an f-string's ``{x!r:>8}``, a ``str.format`` field), its width, precision and
        the value's printed size checked first."""
        widths = bounds.spec_widths(spec, what)
        size = bounds.items(max(widths, bounds.rendered(value, self.budget, what)) + widths, what)
        self.budget.charge(size, what)
        convert = _CONVERSIONS[ord(conversion) if isinstance(conversion, str) else -1 if conversion is None else conversion]
        try:
            return format(convert(value), spec)
        except (TypeError, ValueError) as exc:
            raise Refused(f"{what}: {type(exc).__name__}: {exc}") from None

    # -- evaluation ------------------------------------------------------------------------------------------
    def value(self, node: ast.AST) -> Any:
        self.budget.charge(1, "evaluating")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            self.budget.charge(len(node.elts), "a literal")
            values = [self.value(e) for e in node.elts]
            return values if isinstance(node, ast.List) else tuple(values)
        if isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]  # a None key is a '**' entry
            if len(keys) != len(node.keys):
                raise self.fail(f"line {node.lineno}: '**' in a dict literal is outside the readable subset")
            self.budget.charge(len(keys), "a literal")
            return {self.value(k): self.value(v) for k, v in zip(keys, node.values, strict=True)}
        if isinstance(node, ast.Name):
            if node.id == BASE_KEY:
                return self.base
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.scope:
                raise self.fail(f"line {node.lineno}: {node.id!r} is not defined before use")
            return self.scope[node.id]
        if isinstance(node, ast.Attribute):  # ConfigDict's attribute access: _base_.model.pts_neck
            owner = self.value(node.value)
            if not isinstance(owner, dict) or node.attr not in owner:
                raise self.fail(f"line {node.lineno}: {ast.unparse(node)!r} names nothing defined")
            return owner[node.attr]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self.binop(type(node.op), self.value(node.left), self.value(node.right), node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            v = self.value(node.operand)
            try:
                return _UNARY[type(node.op)](v)
            except TypeError as exc:
                raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {exc}") from None
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):  # one comparator per operator
                right = self.value(right_node)
                if not self.compare(type(op), left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            operands = (self.value(v) for v in node.values)  # lazy: and/or stop at the first that decides
            return all(operands) if isinstance(node.op, ast.And) else any(operands)
        if isinstance(node, ast.IfExp):
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        if isinstance(node, ast.Slice):
            def part(bound: ast.expr | None) -> Any:
                return None if bound is None else self.value(bound)

            return slice(part(node.lower), part(node.upper), part(node.step))
        if isinstance(node, ast.Subscript):
            container = self.value(node.value)
            key = self.value(node.slice)
            if isinstance(key, slice) and isinstance(container, (str, bytes, list, tuple)):
                self.budget.charge(len(container), "a slice")
            try:
                return container[key]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None
        if isinstance(node, ast.JoinedStr):  # an f-string: each field bounded before it is formatted
            return "".join(self.fstring_part(part) for part in node.values)
        if isinstance(node, ast.Call):
            return self.call_node(node)
        raise self.fail(f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:60]!r} is outside the readable subset")

    def fstring_part(self, part: ast.AST) -> str:
        if isinstance(part, ast.Constant):
            return str(part.value)
        if not isinstance(part, ast.FormattedValue):
            raise self.fail(f"line {getattr(part, 'lineno', '?')}: {ast.unparse(part)[:60]!r} is outside the readable subset")
        spec = self.value(part.format_spec) if part.format_spec is not None else ""
        return self.field(self.value(part.value), spec, part.conversion, "an f-string")

    def call_node(self, node: ast.Call) -> Any:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise self.fail(f"line {node.lineno}: '*' or '**' in a call is outside the readable subset")
        if isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [self.value(a) for a in node.args]
            return self.call(node.func.id, args, self.keywords(node), node)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _STR_METHODS:
            owner = self.value(node.func.value)
            if isinstance(owner, str):
                args = [self.value(a) for a in node.args]
                return self.string_method(owner, node.func.attr, args, self.keywords(node), node)
        raise self.fail(f"line {node.lineno}: {ast.unparse(node)[:60]!r} is outside the readable subset")

    def keywords(self, node: ast.Call) -> dict[str, Any]:
        """A call's keyword arguments by name, each evaluated in order."""
        values = {}
        for keyword in node.keywords:
            if keyword.arg is None:  # call_node refused '**' before evaluating anything
                raise self.fail(f"line {node.lineno}: '*' or '**' in a call is outside the readable subset")
            values[keyword.arg] = self.value(keyword.value)
        return values


def _mutation(node: ast.AST) -> TypeGuard[ast.Call]:
    """A call of a mutating method (:data:`_MUTATORS`) without ``*``/``**``."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS
            and not any(isinstance(a, ast.Starred) for a in node.args) and all(k.arg is not None for k in node.keywords))


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
