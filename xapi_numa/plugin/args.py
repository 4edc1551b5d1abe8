"""Checking a plugin call's arguments (all strings, as ``xe`` sends them).

Every refusal is an :class:`~xapi_numa.errors.InvalidArgument` naming the
argument and what is allowed, raised before anything is read or changed.
"""
import re
from typing import AbstractSet, Dict

from xapi_numa.core.host import parse_uuid
from xapi_numa.core.numbers import shown, shown_digits, trim
from xapi_numa.core.policy import MODES, ON_EXHAUST, Policy
from xapi_numa.core.xenalloc import BUILD_TYPES
from xapi_numa.errors import InvalidArgument

MAX_ARG = 1024


def check_args(args: Dict[str, str], required: AbstractSet[str], optional: AbstractSet[str] = frozenset()) -> None:
    allowed = sorted(set(required) | set(optional))
    for key, value in args.items():
        if key not in required and key not in optional:
            raise InvalidArgument(key, "unknown argument", ", ".join(allowed) or "no arguments")
        if len(value) > MAX_ARG:
            raise InvalidArgument(key, "value is longer than {} characters".format(MAX_ARG),
                                  "at most {} characters".format(MAX_ARG))
    for key in sorted(required):
        if key not in args:
            raise InvalidArgument(key, "missing argument", ", ".join(allowed))


def uuid_arg(args: Dict[str, str], key: str = "vm") -> str:
    return parse_uuid(args[key], key)


def bool_arg(args: Dict[str, str], key: str, default: bool = False) -> bool:
    if key not in args:
        return default
    value = trim(args[key]).lower()
    if value not in ("true", "false"):
        raise InvalidArgument(key, "{} {}".format(shown(args[key]), "is not true or false" if value else "is empty"),
                              "true, false")
    return value == "true"


def int_arg(args: Dict[str, str], key: str, low: int, high: int) -> int:
    text = trim(args[key])
    # ASCII digits only: int() would take other scripts' digits too
    if not re.match(r"^[0-9]+$", text):
        raise InvalidArgument(key, "{} is not an integer".format(shown(args[key])), "{}..{}".format(low, high))
    digits = text.lstrip("0") or "0"  # a long run of digits is an integer too, just out of range
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise InvalidArgument(key, "{} is out of range".format(shown_digits(digits)), "{}..{}".format(low, high))
    return int(digits)


def policy_arg(args: Dict[str, str]) -> Policy:
    """mode, nodes and on_exhaust as a Policy.  A mode or on_exhaust given empty is
    refused: Policy.parse reads "" as unset (an emptied other-config key), but a caller
    who typed ``mode=`` meant something, and best_effort is a guess."""
    for key, allowed in (("mode", MODES), ("on_exhaust", ON_EXHAUST)):
        if key in args and not trim(args[key]):
            raise InvalidArgument(key, "{} is empty".format(shown(args[key])), ", ".join(allowed))
    return Policy.parse(args.get("mode"), args.get("nodes"), args.get("on_exhaust"))


def build_type_arg(args: Dict[str, str], key: str = "type") -> str:
    """The guest type a what-if's build is predicted as (how libxc lays out its RAM: pv, pvh
    or hvm, as ``xapi-numa place --type``); hvm where not given."""
    value = trim(args.get(key, "hvm"))
    if value not in BUILD_TYPES:
        raise InvalidArgument(key, "{} is not a guest type".format(shown(args[key])), ", ".join(BUILD_TYPES))
    return value
