"""Reading AWML/mmdet training configs (``--awml-config``) without mmdet, shared by every spec.

mmengine's ``Config`` reads the file when it is installed (it trained the model and knows every
config feature), with ``custom_imports`` left unimported: reading values needs none of them, and
AWML's (``projects.CenterPoint.models``…) exist only in an AWML checkout. Without mmengine, a
restricted evaluator reads the file with mmengine's semantics for what AWML's configs use:
``_base_`` chains (bases read first, their variables reachable as ``_base_.x`` and
``{{_base_.x}}``, the child merged into them key by key unless ``_delete_=True``; a package's own
base, ``mmpretrain::_base_/models/resnet18.py``, from that package's ``.mim/configs`` with its
``_scope_``, or named in a note and skipped where the package is absent), assignments and augmented
assignments (``custom_imports["imports"] += …``) to names and subscripts, ``if`` blocks, literals,
``dict()``/``list()``…, arithmetic, comparisons. Nothing in the file is executed or imported;
anything beyond that subset is refused with a message that names the line. The reader is bounded:
a file over :data:`MAX_CONFIG_BYTES`, a number over :data:`MAX_INT_BITS` bits, a string or list over
:data:`MAX_ITEMS` (``"a" * 10**9``, ``range(10**12)``) or an expression nested past Python's limits
is refused, and every error it meets is a :class:`SpecError` naming the file.

:class:`Sections` is what each spec's reader builds on: every component type is checked by name (a
model a spec does not implement is refused, never approximated) and norms are read with the
defaults the upstream class would apply.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pytest_awml.errors import SpecError

log = logging.getLogger(__name__)

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
            ast.Is: operator.is_, ast.IsNot: operator.is_not}
_CALLS = {"dict": dict, "list": list, "tuple": tuple, "sum": sum, "len": len, "int": int, "float": float,
          "round": round, "min": min, "max": max, "abs": abs, "range": range, "str": str, "bool": bool}
# A config computes small numbers; an exponent beyond this is an attempt to stall the reader (9 ** 9 ** 9).
MAX_EXPONENT = 64
# AWML's largest config (with its bases) is ~20 KB; a file 50x that is not a training config.
MAX_CONFIG_BYTES = 1 << 20
# Voxel counts and seeds fit in 64 bits; 256 leaves room for products of them and stops 2**64 ** 64 chains.
MAX_INT_BITS = 256
# A config's longest list (class names, a pipeline, a palette) has hundreds of entries at most.
MAX_ITEMS = 1 << 16
# What evaluating a bad but parsable expression can raise (1 < "a", int("x"), -"a", a deep nest).
_EVALUATION_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
                      RecursionError, MemoryError)
BASE_KEY, DELETE_KEY = "_base_", "_delete_"
_BASE_VARIABLE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}")
PACKAGE_SEPARATOR, SCOPE_KEY = "::", "_scope_"
# where mmengine looks for a package's own configs (``mim`` installs them under .mim)
PACKAGE_CONFIG_DIRS = (Path(".mim") / "configs", Path("configs"))
NORMS = ("BN", "BN1d", "BN2d", "SyncBN", "NaiveSyncBN2d")  # BatchNorm at inference, whatever trained it
TORCH_BATCH_NORM = (1e-5, 0.1)  # (eps, momentum) that mmcv's BN layers keep unless told


def _fail(path: Path, problem: str, fix: str = "use a plain AWML/mmdet training config, or install mmengine to read this one") -> SpecError:
    return SpecError("training config", f"--awml-config {path}", problem, fix)


@dataclass(frozen=True)
class TrainingConfig:
    """A config file's variables (bases merged) and what reading it left out."""

    path: Path
    values: Mapping[str, Any]
    notes: tuple[str, ...] = ()

    def with_model(self, **sections: Mapping[str, Any]) -> "TrainingConfig":
        """This config with model sections changed key by key, as a child config that names them would."""
        return TrainingConfig(self.path, _merge(dict(self.values), {"model": sections}), self.notes)


def read_config(path: Path) -> TrainingConfig:
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file", "give the path of the training config (.py)")
    _check_size(path)
    try:
        from mmengine import Config
    except ImportError:
        return _read_restricted(path)
    try:
        values = Config.fromfile(str(path), import_custom_modules=False).to_dict()
    except ModuleNotFoundError as exc:  # a ``pkg::`` base of a package absent here: the reader notes and skips it
        log.info("--awml-config: mmengine cannot read %s (%s); reading it without mmengine", path, exc)
        return _read_restricted(path)
    except (SyntaxError, OSError, KeyError, ValueError, TypeError, NameError, AttributeError) as exc:
        raise _fail(path, f"mmengine cannot read it: {type(exc).__name__}: {exc}", "fix the config file") from None
    return TrainingConfig(path, values, _absent_custom_imports(values))


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise _fail(path, f"{size} bytes, over the {MAX_CONFIG_BYTES} a training config can be", "give the training config (.py)")


def _read_restricted(path: Path) -> TrainingConfig:
    reader = _Reader(path)
    try:
        values = reader.read()
    except _EVALUATION_ERRORS as exc:  # what the checks on each node did not foresee is still the file's fault
        raise _fail(path, f"cannot be read: {type(exc).__name__}: {str(exc)[:200]}", "fix the config file") from None
    for note in reader.notes:
        log.warning("--awml-config: %s", note)
    return TrainingConfig(path, values, (*reader.notes, *_absent_custom_imports(values)))


def _absent_custom_imports(values: Mapping[str, Any]) -> tuple[str, ...]:
    """A note naming the ``custom_imports`` modules absent here: the reader never imports them,
    and only the model types they would register could matter (each spec checks those by name)."""
    imports = (values.get("custom_imports") or {}).get("imports") or []
    absent = [name for name in imports if importlib.util.find_spec(name.split(".")[0]) is None]
    if not absent:
        return ()
    note = f"custom_imports not imported (not installed here): {', '.join(absent)}"
    log.warning("--awml-config: %s", note)
    return (note,)


class _Reader:
    """mmengine's config semantics for the subset AWML's configs use, evaluated without exec."""

    def __init__(self, path: Path, chain: tuple[Path, ...] = ()) -> None:
        self.path = path.resolve()
        if self.path in chain:
            raise _fail(path, f"_base_ includes itself ({' -> '.join(p.name for p in (*chain, self.path))})")
        self.chain = (*chain, self.path)
        self.scope: dict[str, Any] = {}
        self.base: dict[str, Any] = {}
        self.notes: list[str] = []

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            raise _fail(self.path, "no such file (named in a _base_ list)" if len(self.chain) > 1 else "no such file")
        _check_size(self.path)
        # mmengine turns {{_base_.x}} into a placeholder before parsing; here it becomes _base_.x
        text = _BASE_VARIABLE.sub(lambda m: f"{BASE_KEY}.{m.group(1)}", self.path.read_text())
        try:
            tree = ast.parse(text, filename=str(self.path))
        except SyntaxError as exc:
            raise _fail(self.path, f"line {exc.lineno}: syntax error: {exc.msg}", "fix the config file") from None
        except (RecursionError, MemoryError, ValueError) as exc:  # nesting past the parser's limits; NUL bytes
            raise _fail(self.path, f"cannot be parsed: {type(exc).__name__}: {exc}", "fix the config file") from None
        for statement in tree.body:  # mmengine reads every base before running the child
            if isinstance(statement, ast.Assign) and [getattr(t, "id", None) for t in statement.targets] == [BASE_KEY]:
                self._read_bases(self.value(statement.value))
        self.run(tree.body)
        return _merge(self.base, self.scope)

    def _read_bases(self, bases: Any) -> None:
        for name in [bases] if isinstance(bases, str) else bases:
            if PACKAGE_SEPARATOR in name:
                values = self._package_base(name)
            else:
                reader = _Reader(self.path.parent / name, self.chain)
                values = reader.read()
                self.notes += reader.notes
            repeated = sorted(set(values) & set(self.base))
            if repeated:
                raise _fail(self.path, f"_base_ files define the same key(s) {repeated} (mmengine refuses that too)")
            self.base.update(values)

    def _package_base(self, name: str) -> dict[str, Any]:
        """``package::relative/path.py`` as mmengine reads it: the package's own config file, its dicts
        that name a ``type`` scoped to the package. Absent package: a note, and nothing read."""
        package, _, relative = name.partition(PACKAGE_SEPARATOR)
        found = importlib.util.find_spec(package)  # locates the package; runs none of its code
        roots = [Path(p) for p in (found.submodule_search_locations or [])] if found is not None else []
        for candidate in (root / folder / relative for root in roots for folder in PACKAGE_CONFIG_DIRS):
            if candidate.is_file():
                reader = _Reader(candidate, self.chain)
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
                result = self.value(statement.value)
                for target in statement.targets:
                    self.assign(target, result)
            elif isinstance(statement, ast.AugAssign) and type(statement.op) in _BINOPS:
                current = self.value(statement.target)  # read as a value: ctx is Store, which value() ignores
                self.assign(statement.target, self.binop(type(statement.op), current, self.value(statement.value), statement))
            elif isinstance(statement, ast.If):
                self.run(statement.body if self.value(statement.test) else statement.orelse)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                raise _fail(self.path, f"line {statement.lineno}: imports are not read without mmengine")
            else:
                raise _fail(self.path, f"line {statement.lineno}: {type(statement).__name__} statements are not read without mmengine")

    def assign(self, target: ast.expr, result: Any) -> None:
        if isinstance(target, ast.Name):
            self.scope[target.id] = result
        elif isinstance(target, ast.Subscript):
            container = self.value(target.value)
            if not isinstance(container, (dict, list)):
                raise _fail(self.path, f"line {target.lineno}: cannot assign into a {type(container).__name__}")
            container[self.value(target.slice)] = result
        else:
            raise _fail(self.path, f"line {target.lineno}: assignments to {ast.unparse(target)!r} are not read without mmengine")

    def binop(self, op: type, left: Any, right: Any, node: ast.AST) -> Any:
        if op is ast.Pow and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise _fail(self.path, f"line {node.lineno}: exponent {right} is beyond what a config needs (max {MAX_EXPONENT})")
        if op is ast.Pow and isinstance(left, int) and isinstance(right, int) and abs(left).bit_length() * abs(right) > MAX_INT_BITS:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r} is over {MAX_INT_BITS} bits, more than a config needs")
        if op is ast.Mult and _repeated_length(left, right) > MAX_ITEMS:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r} would repeat a sequence past the "
                        f"{MAX_ITEMS} items a config needs")
        try:
            return self.bounded(_BINOPS[op](left, right), node)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {exc}") from None

    def bounded(self, value: Any, node: ast.AST) -> Any:
        """``value``, unless it is a number or a sequence larger than any config needs."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r} is over {MAX_INT_BITS} bits, more than a config needs")
        if isinstance(value, (str, bytes, list, tuple, range)) and len(value) > MAX_ITEMS:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r} has {len(value)} items, over the "
                        f"{MAX_ITEMS} a config needs")
        return value

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _fail(self.path, f"line {node.lineno}: '**' in a dict literal is outside the readable subset")
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            if node.id == BASE_KEY:
                return self.base
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.scope:
                raise _fail(self.path, f"line {node.lineno}: {node.id!r} is not defined before use")
            return self.scope[node.id]
        if isinstance(node, ast.Attribute):  # ConfigDict's attribute access: _base_.model.pts_neck
            owner = self.value(node.value)
            if not isinstance(owner, dict) or node.attr not in owner:
                raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)!r} names nothing defined")
            return owner[node.attr]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self.binop(type(node.op), self.value(node.left), self.value(node.right), node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            v = self.value(node.operand)
            return -v if isinstance(node.op, ast.USub) else (not v if isinstance(node.op, ast.Not) else v)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.value(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = (self.value(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.IfExp):
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        if isinstance(node, ast.Slice):
            part = lambda n: None if n is None else self.value(n)  # noqa: E731
            return slice(part(node.lower), part(node.upper), part(node.step))
        if isinstance(node, ast.Subscript):
            container = self.value(node.value)
            try:
                return container[self.value(node.slice)]
            except (KeyError, IndexError, TypeError) as exc:
                raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [self.value(a) for a in node.args]
            kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg is not None}
            if len(kwargs) != len(node.keywords):
                raise _fail(self.path, f"line {node.lineno}: '**' in a call is outside the readable subset")
            try:
                result = self.bounded(_CALLS[node.func.id](*args, **kwargs), node)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None
            return list(result) if isinstance(result, range) else result
        raise _fail(self.path, f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:60]!r} is outside the readable subset")


def _repeated_length(left: Any, right: Any) -> int:
    """How long ``left * right`` would be, without making it, when it repeats a sequence; else 0."""
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int):
        return len(sequence) * max(times, 0)
    return 0


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


# Keys that decide nothing a deployed model computes, with the reason a spec may pass them over: the
# weights a run uses come from the checkpoint (or are seeded), and training settings never reach inference.
INERT = {
    "init_cfg": "weight initialisation: the checkpoint's (or the seeded) weights replace it",
    "pretrained": "weights to start training from: the checkpoint's (or the seeded) weights replace them",
    "frozen_stages": "parameters frozen in training",
    "train_cfg": "training targets and assignment",
    "requires_grad": "whether training updates the layer",
}
NORM_KEYS = ("type", "eps", "momentum")
CONV2D = "Conv2d"


class Sections:
    """One training config's model sections, each checked against the component types a spec implements.

    ``supported`` maps a section name to the registry names (scope prefix dropped) the spec computes;
    anything else is refused by name, never approximated. :meth:`fields` holds a section to the keys the
    spec reads or knows to be inert at inference, so that no key the upstream class would act on is dropped
    without a word.
    """

    def __init__(self, spec: str, supported: Mapping[str, tuple[str, ...]], path: Path, values: Mapping[str, Any]) -> None:
        self.spec, self.supported, self.path, self.values = spec, supported, path, values
        model = values.get("model")
        if not isinstance(model, dict):
            raise self.fail("no model = dict(...) section")
        self.model = model

    def fail(self, problem: str, fix: str = "") -> SpecError:
        return SpecError(self.spec, f"--awml-config {self.path}", problem, fix)

    def typed(self, section: str, node: Any) -> dict:
        kind = node.get("type") if isinstance(node, dict) else None
        kind = kind.split(".")[-1] if isinstance(kind, str) else kind  # "mmdet.SeparateHead" → its class name
        if kind not in self.supported[section]:
            raise self.fail(f"{section}: not supported: {kind}", f"this spec implements {section} as {' or '.join(self.supported[section])}")
        return node

    def unsupported(self, section: str, what: str) -> SpecError:
        return self.fail(f"{section}: not supported: {what}")

    def fields(self, section: str, node: Mapping[str, Any] | None, read: tuple[str, ...], inert: Mapping[str, str] | None = None) -> None:
        """Refuse any key of ``node`` outside ``read`` (what the spec reads) and ``inert`` (key → why it changes
        nothing at inference; :data:`INERT` always counts): the upstream class would act on it, this spec would not."""
        known = {"type", SCOPE_KEY, *read, *INERT, *(inert or {})}
        unknown = [key for key in (node or {}) if key not in known]
        if unknown:
            raise self.fail(f"{section}.{unknown[0]}: not read by this spec (it reads {', '.join(sorted(set(read)))})",
                            f"remove {section}.{unknown[0]}, or use a spec that implements it")

    def norm(self, section: str, cfg: Mapping[str, Any] | None, default: tuple[float, float] = TORCH_BATCH_NORM) -> tuple[float, float]:
        """``(eps, momentum)`` of a BatchNorm config; keys it leaves out take ``default`` (the reading class's).
        ``None`` is a layer without a norm, which no spec builds."""
        if cfg is None:
            raise self.unsupported(f"{section}.norm_cfg", "None (no norm layer after the convs)")
        if cfg.get("type", "BN") not in NORMS:
            raise self.unsupported(section, f"norm {cfg.get('type')}")
        self.fields(f"{section}.norm_cfg", cfg, NORM_KEYS)
        return float(cfg.get("eps", default[0])), float(cfg.get("momentum", default[1]))

    def conv_bias(self, section: str, cfg: Mapping[str, Any] | None, kinds: tuple[str, ...] = (CONV2D,)) -> bool:
        """Whether a conv built from ``cfg`` (mmcv's ``build_conv_layer``/``build_upsample_layer``) has a bias: the
        torch layer's own default (True) unless the config says ``bias``; a conv type other than ``kinds`` is refused."""
        cfg = cfg or {"type": CONV2D}
        if cfg.get("type", CONV2D) not in kinds:
            raise self.unsupported(section, f"type {cfg.get('type')!r} (implemented: {', '.join(kinds)})")
        self.fields(section, cfg, ("bias",))
        return bool(cfg.get("bias", True))

    def required(self, section: str, node: Mapping[str, Any], key: str) -> Any:
        """A key the upstream class has no default for."""
        if key not in node:
            raise self.fail(f"{section}.{key} is not set (the upstream class has no default for it)", f"set {section}.{key}")
        return node[key]

    def agree(self, field: str, value: Any, reference_field: str, reference: Any, fix: str) -> None:
        """A cross-check: ``field`` must equal what ``reference_field`` makes it (the layer before, the grid)."""
        if value != reference:
            raise self.fail(f"{field} is {_plain(value)}, but {reference_field} makes it {_plain(reference)}", fix)


def _plain(value: Any) -> Any:
    """Tuples as the lists a config writes, for messages."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
