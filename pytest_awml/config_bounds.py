"""What reading a config may cost, predicted from an operation's operands before it runs.

The restricted config reader (:mod:`pytest_awml.config_reader`) evaluates files a user hands it. A
24-byte expression can ask for gigabytes (``"%01500000000d" % 0``) or hours (``sum([[0]*60000]*60000, [])``);
checking the value once it is built is too late. So every operation that can make or walk something large
asks here first: the size of what it would make (a repetition, a concatenation, a formatted string), the
size of what it would walk (a comparison or a ``str`` of a container whose items are shared many times),
and the whole file's work, charged to one :class:`Budget`. Exceeding a bound is a :class:`Refused` naming the
bound; the reader turns it into a ``SpecError`` with the file and line.

The figures are generous next to what AWML's configs need (the largest, with its bases, makes a few thousand
values) and small enough that a file refused at any bound answers in a fraction of a second.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

# A config's longest list (class names, a pipeline, a palette) has hundreds of entries at most.
MAX_ITEMS = 1 << 16
# All the work of reading one file and its bases (items made, items walked): AWML's largest config needs a
# few thousand; a million keeps every refused file well under a second.
MAX_WORK = 1 << 20
# Configs nest dicts a handful of levels deep (model.pts_bbox_head.bbox_coder...).
MAX_DEPTH = 64
# Voxel counts and seeds fit in 64 bits; 256 leaves room for products of them and stops 2**64 ** 64 chains.
MAX_INT_BITS = 256
# A config computes small numbers; an exponent beyond this is an attempt to stall the reader (9 ** 9 ** 9).
MAX_EXPONENT = 64

# printf-style conversions (``%-08.3f``, ``%(name)s``, ``%*d``): width and precision are what can explode
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
# format-spec mini-language (``>12``, ``08.3f``, ``,``): its width and precision
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[bcdeEfFgGnosxX%]?$")
_CONTAINERS = (dict, list, tuple, set, frozenset)
SCALAR_WIDTH = 32  # the widest a float, bool or None prints, with a separator (a float's repr is at most 24)


class Refused(Exception):
    """An operation would exceed a bound; the message says which and by how much."""


class Budget:
    """The work one file (and its bases) may cost; every operation charges what it will do before doing it."""

    def __init__(self, limit: int = MAX_WORK) -> None:
        self.limit, self.spent = limit, 0

    def charge(self, units: int, what: str) -> None:
        self.spent += max(units, 0)
        if self.spent > self.limit:
            raise Refused(f"{what}: reading the file would take over {self.limit} steps, more than a config needs")


def items(size: int, what: str) -> int:
    """``size``, unless a value that long is more than a config needs."""
    if size > MAX_ITEMS:
        raise Refused(f"{what} would make {size} items, over the {MAX_ITEMS} a config needs")
    return size


def repeated(left: Any, right: Any) -> int:
    """How long ``left * right`` would be when it repeats a sequence (else 0), without making it."""
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
        return len(sequence) * max(times, 0)
    return 0


def concatenated(values: Iterable[Any]) -> int:
    """How long concatenating ``values`` (``a + b``, ``sum(lists, [])``, ``sep.join``) would be; 0 for numbers."""
    return sum(len(v) for v in values if isinstance(v, (str, bytes, list, tuple)))


def int_bits(op: str, left: Any, right: Any) -> int:
    """An upper bound on the bits of ``left op right`` for the operators that can explode (``<<``, ``**``) on
    integers; 0 otherwise."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right)):
        return 0
    a = abs(left).bit_length()
    if op == "<<":
        return a + max(right, 0)
    if op == "**":
        return a * max(right, 0)
    return 0  # the other operators make at most a few bits more than their operands: the reader's backstop sees those


def walk(value: Any, budget: Budget, what: str) -> tuple[int, int]:
    """``(items, characters)``: how many items ``value`` holds counting a shared item each time it is reached
    (what printing or comparing it visits), and an upper bound on ``len(repr(value))``; charged to ``budget``
    container by container, refused past :data:`MAX_ITEMS` items or :data:`MAX_DEPTH` levels before a container's
    items are looked at."""
    if not isinstance(value, _CONTAINERS):
        budget.charge(1, what)
        return 1, _printed(value)
    # level by level, without a tuple per item: a walk allocates nothing per item, so it starts no garbage
    # collection (which, in a process holding torch, costs more than the walk)
    count, chars, level = 1, 2, [value]
    for _ in range(MAX_DEPTH):
        deeper: list[Any] = []
        for item in level:
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            count += len(children)
            if count > MAX_ITEMS:
                raise Refused(f"{what} holds over {MAX_ITEMS} items (counting shared ones each time), more than a config needs")
            budget.charge(len(children) + 1, what)
            for child in children:
                if isinstance(child, _CONTAINERS):
                    deeper.append(child)
                    chars += 4  # brackets and a separator
                else:
                    chars += _printed(child)
        if not deeper:
            return count, chars
        level = deeper
    raise Refused(f"{what} nests deeper than the {MAX_DEPTH} levels a config needs")


def _printed(item: Any) -> int:
    """The most characters ``repr`` writes for ``item`` itself (its items counted apart), with separators."""
    if isinstance(item, (str, bytes)):
        return 4 + 10 * len(item)  # quotes, and the longest escape (\\U0001f600) per character at worst
    if isinstance(item, int):
        return 4 + abs(item).bit_length() // 3 + 1  # a decimal digit holds over 3 bits
    return SCALAR_WIDTH


def rendered(value: Any, budget: Budget, what: str) -> int:
    """An upper bound on ``len(str(value))`` (and ``repr``), found by walking it, not printing it."""
    if isinstance(value, str):
        return len(value)
    return walk(value, budget, what)[1]


def spec_widths(spec: str, what: str) -> int:
    """The larger of a format spec's width and precision (``>12``, ``.3f``); a spec this reader cannot parse
    is refused rather than guessed."""
    match = _FORMAT_SPEC.match(spec)
    if match is None:
        raise Refused(f"{what}: format spec {spec!r} is outside the readable subset")
    return max(int(match.group(1) or 0), int(match.group(2) or 0))


def printf_size(template: str | bytes, args: Any, budget: Budget, what: str) -> int:
    """An upper bound on the length of ``template % args``: each conversion's width, precision and value."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    values = list(args.values()) if isinstance(args, dict) else list(args) if isinstance(args, tuple) else [args]
    size = len(text)
    for match in _PRINTF.finditer(text):
        for group in match.group(1, 2):
            if group == "*":
                raise Refused(f"{what}: '*' widths are outside the readable subset")
            size += int(group or 0)
    size += sum(rendered(v, budget, what) for v in values)
    return size


def format_fields(template: str, what: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """``str.format``'s fields, parsed by :class:`string.Formatter`; only plain fields (``{}``, ``{0}``,
    ``{name}``) with a literal spec are read: attribute and index lookups (``{0.__class__}``) and nested
    fields are refused, they reach past the values a config holds."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise Refused(f"{what}: {exc}") from None
    for _, name, spec, _ in fields:
        if name is not None and (not re.fullmatch(r"\w*", name) or "{" in (spec or "")):
            raise Refused(f"{what}: field {{{name}}} with spec {spec!r} is outside the readable subset (plain fields only)")
    return fields
