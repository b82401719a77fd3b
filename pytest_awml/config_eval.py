"""Evaluating a config file's statements without running them: the subset AWML's configs use (assignments and
augmented assignments to names and subscripts, ``if`` blocks, literals, ``dict()``/``list()``…, arithmetic and
shifts, comparisons, f-strings, ``%`` and ``str.format``, the string methods deploy configs call, and
``update``/``append``/``extend`` as statements), every operation bounded from its operands before it runs
(:mod:`pytest_awml.config_bounds`). Anything beyond the subset is refused with a message that names the line.

Which file, its ``_base_`` chain and the merge are the reader's (:mod:`pytest_awml.config_reader`), which
subclasses :class:`Evaluator` and says how a refusal names the file (:meth:`Evaluator.fail`).
"""

from __future__ import annotations

import ast
import functools
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeGuard

from pytest_awml import config_bounds as bounds
from pytest_awml.config_bounds import MAX_EXPONENT, MAX_INT_BITS, MAX_ITEMS, Budget, Refused
from pytest_awml.errors import SpecError

BASE_KEY = "_base_"
NEEDS_MMENGINE = "use a plain AWML/mmdet config, or install mmengine to read this one"
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
# The nodes a refusal names by line: statements and expressions (ast.AST itself has no lineno)
_Located = ast.stmt | ast.expr


class Evaluator(ABC):
    """A file's variables (``scope``), its bases' (``base``, reachable as ``_base_.x``), and one work budget."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.scope: dict[str, Any] = {}
        self.base: dict[str, Any] = {}

    @abstractmethod
    def fail(self, problem: str, fix: str = NEEDS_MMENGINE) -> SpecError:
        """The error for a refusal, naming the option and the file."""

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
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"line {node.lineno}: '*' in a call is outside the readable subset")
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
        """A call's keyword arguments by name, each evaluated in order; ``**mapping`` spreads a dict of str keys (AWML's
        StreamPETR pipelines write ``dict(type="NormalizeMultiviewImage", **img_norm_cfg)``), a key given twice refused as
        Python refuses it."""
        values: dict[str, Any] = {}
        for keyword in node.keywords:
            given = self.value(keyword.value)
            if keyword.arg is not None:
                spread = {keyword.arg: given}
            elif isinstance(given, dict) and all(isinstance(k, str) for k in given):
                spread = given
            else:
                raise self.fail(f"line {node.lineno}: '**' of a {type(given).__name__} (a dict with str keys is readable)")
            twice = sorted(set(spread) & set(values))
            if twice:
                raise self.fail(f"line {node.lineno}: keyword {twice[0]!r} is given twice in one call")
            values.update(spread)
        return values



def _mutation(node: ast.AST) -> TypeGuard[ast.Call]:
    """A call of a mutating method (:data:`_MUTATORS`) without ``*``/``**``."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS
            and not any(isinstance(a, ast.Starred) for a in node.args) and all(k.arg is not None for k in node.keywords))
