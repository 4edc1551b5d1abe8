"""What a value in the simulated host's state file may be, and how it is said when it is not.

A small declarative language for :mod:`.state_schema`: a shape checks one JSON value at a
place (``host.domains[1].vcpus[0]``) and raises :class:`Damaged` naming the place, what
is allowed there and what was found.  Bounds may depend on the host (how many nodes and
CPUs it has, its tick): they are functions of a :class:`Context` that the schema fills in.

Every read and every write of the file is checked, so :func:`check` first runs with no
place (``where`` None: no text is made for the thousands of values that fit) and only
for a file that does not fit again, to name the first thing wrong.
"""
import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from xapi_numa.core.numbers import is_decimal
from xapi_numa.errors import InvalidArgument


class Damaged(Exception):
    """Where in the file, and what is wrong there."""


class Context:
    """What bounds depend on: facts about the state being checked (how many nodes, its
    tick ...), each derived from it when first asked for: a schema checks the values a
    fact is derived from before any bound that asks for it."""

    def __init__(self, data: dict, derive: Dict[str, Callable[["Context"], Any]]) -> None:
        self.data, self.derive = data, derive
        self.facts: Dict[str, Any] = {}
        self.worked_out: Dict["Shape", Any] = {}  # what a shape works out from the facts, once

    def __getitem__(self, name: str) -> Any:
        if name not in self.facts:
            self.facts[name] = self.derive[name](self)
        return self.facts[name]


Bound = Union[None, int, Callable[[Context], int]]
Where = Optional[str]  # the place in the file; None while no message is wanted


def check(shape: "Shape", value: Any, where: str, ctx: Context) -> None:
    """Raise Damaged naming the first thing in ``value`` that does not fit ``shape``."""
    try:
        shape.check(value, None, ctx)
    except Damaged:
        shape.check(value, where, ctx)  # the same again, naming it (raises)
        raise


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
               float: "a number", type(None): "null"}


def type_name(value: Any) -> str:
    """What kind of value was found (a number not an integer, itself: 2.5, inf)."""
    if type(value) is float:
        return repr(value)
    return _KIND_NAMES.get(type(value), type(value).__name__)


def is_int(value: Any) -> bool:
    return type(value) is int  # not isinstance: JSON true is no number


def is_list(value: Any) -> bool:
    """A JSON list: read from the file, a list; about to be written, a list or a tuple."""
    return type(value) is list or type(value) is tuple


def found(value: Any) -> str:
    """The value as the message shows it: a number or a short text itself, else its kind."""
    if is_int(value) or isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, list)) and len(repr(value)) <= 40:
        return repr(value)
    return type_name(value)


Simple = Optional[Tuple[type, Optional[int], Optional[int]]]


class Shape:
    """What one value may be."""

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        """Raise Damaged unless ``value`` fits (saying so at ``where``, when it is not None)."""
        raise NotImplementedError

    def simple(self, ctx: Context) -> Simple:
        """(type, lo, hi) if a value fits when it is of that type within those bounds: what
        a :class:`Row` checks fast."""
        return None


class Int(Shape):
    """An integer within lo..hi (inclusive; either may be left open or depend on the host)."""

    def __init__(self, lo: Bound = None, hi: Bound = None, what: str = "an integer") -> None:
        self.lo, self.hi, self.what = lo, hi, what
        self.fixed = not callable(lo) and not callable(hi)

    def range(self, ctx: Context) -> Tuple[Optional[int], Optional[int]]:
        if self.fixed:
            return self.lo, self.hi
        got = ctx.worked_out.get(self)
        if got is None:
            got = ctx.worked_out[self] = (_bound(self.lo, ctx), _bound(self.hi, ctx))
        return got

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if type(value) is not int:
            raise Damaged(f"{where} must be an integer, not {type_name(value)}")
        lo, hi = self.range(ctx)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Damaged(f"{where} must be {_allowed(self.what, lo, hi)}, not {value}")

    def simple(self, ctx: Context) -> Simple:
        return (int,) + self.range(ctx)

    def fits_all(self, values: Sequence[Any], ctx: Context) -> bool:
        """Whether every one of ``values`` fits (at C speed: a list of ten thousand pages)."""
        if not all(type(x) is int for x in values):
            return False
        lo, hi = self.range(ctx)
        return not values or ((lo is None or min(values) >= lo) and (hi is None or max(values) <= hi))


def _bound(bound: Bound, ctx: Context) -> Optional[int]:
    return bound(ctx) if callable(bound) else bound


def _allowed(what: str, lo: Optional[int], hi: Optional[int]) -> str:
    if lo == hi:  # (a host with no run queue for it: only -1)
        return str(lo)
    if hi is None:
        return f"{what} ({lo} or more)"
    if lo is None:
        return f"{what} ({hi} or less)"
    return f"{what} ({lo}..{hi})"


# what a list's length or a mask's bits count (facts of the host), and the word for it
_UNITS = {"nodes": "nodes", "cpus": "CPUs", "rqs": "run queues", "rng_words": "words of generator state"}


class Mask(Shape):
    """A bitmask of the host's CPUs (``of="cpus"``) or nodes, empty only where ``empty`` allows."""

    def __init__(self, of: str = "cpus", empty: bool = False) -> None:
        self.of, self.empty = of, empty

    def simple(self, ctx: Context) -> Simple:
        return int, 0 if self.empty else 1, (1 << ctx[self.of]) - 1

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        _, least, most = self.simple(ctx)
        what = f"a bitmask of the host's {ctx[self.of]} {_UNITS[self.of]}"
        if not is_int(value):
            raise Damaged(f"{where} must be {what}, not {type_name(value)}")
        if not least <= value <= most:
            raise Damaged(f"{where} must be {what} ({least}..{most}), not {value}")


class Number(Shape):
    """A finite number, integer or not (1e400 reads as inf), of at least ``lo`` if given."""

    def __init__(self, lo: Optional[float] = None) -> None:
        self.lo = lo

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if not (is_int(value) or isinstance(value, float)) or not math.isfinite(value) or (
                self.lo is not None and value < self.lo):
            least = "" if self.lo is None else f" of at least {self.lo}"
            raise Damaged(f"{where} must be a finite number{least}, not {found(value)}")


class Kind(Shape):
    """A value of one JSON kind, its content unchecked (text, true/false)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def simple(self, ctx: Context) -> Simple:
        return self.kind, None, None

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if type(value) is not self.kind:
            raise Damaged(f"{where} must be {_KIND_NAMES[self.kind]}, not {type_name(value)}")


class OneOf(Shape):
    """One of a few words."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if value not in self.choices or type(value) is not str:
            raise Damaged(f"{where} must be one of {', '.join(self.choices)}, not {found(value)}")


class Parsed(Shape):
    """Text that ``parse`` accepts (its refusal says what is allowed, else ``what`` does, and
    ``hint`` what to do)."""

    def __init__(self, parse: Callable[[str], Any], what: str, hint: str = "") -> None:
        self.parse, self.what, self.hint = parse, what, hint

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if type(value) is not str:
            raise Damaged(f"{where} must be {self.what}, not {type_name(value)}")
        try:
            self.parse(value)
        except InvalidArgument as err:
            raise Damaged(f"{where}: {err.detail}" + (f" (allowed: {err.allowed})" if err.allowed else "")) from None
        except ValueError:
            hint = f" ({self.hint})" if self.hint else ""
            raise Damaged(f"{where} must be {self.what}, not {found(value)}{hint}") from None


class Maybe(Shape):
    """null, or a value of ``shape``."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if value is not None:
            self.shape.check(value, where, ctx)


class ListOf(Shape):
    """A list of ``item``: as long as the host has ``per`` (nodes, cpus ...), or at least ``least``."""

    def __init__(self, item: Shape, per: Optional[str] = None, least: int = 0) -> None:
        self.item, self.per, self.least = item, per, least

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if not is_list(value):
            raise Damaged(f"{where} must be a list, not {type_name(value)}")
        if self.per is not None and len(value) != ctx[self.per]:
            raise Damaged(f"{where} has {len(value)} entries for {ctx[self.per]} {_UNITS[self.per]}")
        if len(value) < self.least:
            raise Damaged(f"{where} must not be empty" if self.least == 1 else
                          f"{where} must have at least {self.least} entries, not {len(value)}")
        if type(self.item) is Int and self.item.fits_all(value, ctx):
            return
        for i, item in enumerate(value):
            self.item.check(item, where and f"{where}[{i}]", ctx)


Fields = Sequence[Tuple[str, Shape]]


class Record(Shape):
    """An object with these keys (checked in this order), and these others where present."""

    def __init__(self, required: Fields, optional: Fields = ()) -> None:
        self.required, self.optional = required, optional

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if type(value) is not dict:
            raise Damaged(f"{where} must be an object, not {type_name(value)}")
        for key, shape in self.required:
            if key not in value:
                raise Damaged(f"{where} has no {key!r}")
            shape.check(value[key], where and f"{where}.{key}", ctx)
        for key, shape in self.optional:
            if key in value:
                shape.check(value[key], where and f"{where}.{key}", ctx)


class Row(Shape):
    """A list whose entries mean different things by position (``name`` says which in a
    message); the last ``optional`` of them may be missing (files written before them)."""

    def __init__(self, fields: Fields, optional: int = 0) -> None:
        self.fields, self.optional = fields, optional

    def _fits(self, value: Any, ctx: Context) -> bool:
        """Whether a row of simple fields fits, without a call per field (a host has a row
        for each of its thousands of vCPUs)."""
        plan = ctx.worked_out.get(self)
        if plan is None:
            plan = ctx.worked_out[self] = [shape.simple(ctx) for _, shape in self.fields]
        if None in plan or not len(self.fields) - self.optional <= len(value) <= len(self.fields):
            return False
        for (kind, lo, hi), item in zip(plan, value):
            if type(item) is not kind or (lo is not None and item < lo) or (hi is not None and item > hi):
                return False
        return True

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if where is None and is_list(value) and self._fits(value, ctx):
            return
        if not is_list(value):
            raise Damaged(f"{where} must be a list, not {type_name(value)}")
        most, least = len(self.fields), len(self.fields) - self.optional
        if not least <= len(value) <= most:
            wanted = str(most) if least == most else f"{least}..{most}"
            raise Damaged(f"{where} has {len(value)} fields, not {wanted}")
        for i, ((name, shape), item) in enumerate(zip(self.fields, value)):
            shape.check(item, where and f"{where}[{i}] ({name})", ctx)


class MapOf(Shape):
    """An object whose keys are decimal ids (``key`` says which: a thread, an IRQ), each
    holding a value of ``item``."""

    def __init__(self, item: Shape, key: str) -> None:
        self.item, self.key = item, key

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if type(value) is not dict:
            raise Damaged(f"{where} must be an object, not {type_name(value)}")
        for k, item in value.items():
            if not is_decimal(k) or len(k) > 9:
                raise Damaged(f"{where} has the key {found(k)}, not {self.key} (decimal digits)")
            self.item.check(item, where and f"{where}[{k}]", ctx)


# --- shapes both the host's and the schedulers' tables use ---------------------------------------
def last(fact: str) -> Callable[[Context], int]:
    """The highest index of a fact counted from 0 (the last CPU, node ...)."""
    return lambda ctx: ctx[fact] - 1


COUNT = Int(0)
BOOL = Kind(bool)
CPU = Int(0, last("cpus"), "a CPU")
NODE = Int(0, last("nodes"), "a node")
SINCE = Int(-1, lambda ctx: ctx["tick"], "-1 or a tick")  # a tick gone by, or -1: none
