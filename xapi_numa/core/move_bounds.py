"""The bounds of one memory move's arguments, checked before anything is read or moved:
the target node, the batch, the most to move, the probe window, a fallback with a vnode,
and the pages to skip (at most the VM's own, at its maximum: no step skips more)."""
from typing import Optional

from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.units import format_size
from xapi_numa.errors import InvalidArgument

MAX_PROBE_MS = 60000


def check_arguments(nodes: int, to: int, batch: int, max_bytes: Optional[int], probe_ms: int,
                    allow_fallback: bool, vnode: Optional[int]) -> None:
    """Refuse a move's argument out of its range (the field as the core names it)."""
    if not 0 <= to < nodes:
        raise InvalidArgument("to", "no node {} on this host".format(to), "0..{}".format(nodes - 1))
    if not 1 <= batch <= pagemove.MAX_BATCH:
        raise InvalidArgument("batch", "{} pages".format(batch), "1..{}".format(pagemove.MAX_BATCH))
    if max_bytes is not None:
        pagemove.MOVE_MAX.check(max_bytes, "max", format_size(max_bytes))
    if not 0 <= probe_ms <= MAX_PROBE_MS:
        raise InvalidArgument("probe", "{} ms".format(probe_ms), "0..{}".format(MAX_PROBE_MS))
    if vnode is not None and allow_fallback:
        raise InvalidArgument("allow_fallback", "a vnode lands whole on one pnode, never partly elsewhere",
                              "no fallback with a vnode")


def check_skip(skip: int, pages: int, name: str) -> None:
    """``skip`` (the movable pages an earlier step moved) is at most ``pages``, the VM's own at
    its maximum: more would move nothing and record the move as done."""
    if not 0 <= skip <= pages:
        raise InvalidArgument("skip", "{} pages".format(skip),
                              "0..{} (the pages of {} at its maximum memory)".format(pages, name))
