"""Per-VM NUMA policy: what an admin asks for, parsed from the strings ``xe`` sends.

Three fields, stored by the XAPI layer in ``VM.other_config`` as
``numa_mode``, ``numa_nodes`` and ``numa_on_exhaust``:

``mode``
    ``any``          Xen's default: no affinity, memory striped over all nodes.
    ``best_effort``  soft affinity on the fewest, closest nodes that fit.
    ``preferred``    soft affinity; memory from the listed nodes, in order.
    ``strict``       hard affinity; memory and vCPUs only on the chosen nodes.
``nodes``
    an ordered list to try (``1,3,0``; ranges allowed: ``0-3``), ``nearest``
    (start at the best node, then outward by SLIT distance), a list ending in
    ``nearest`` (``2,nearest``: start at 2, then outward), or unset (the
    engine chooses).
``on_exhaust``
    ``fallback``  when the nodes asked for are full, take the next node in
                  order, then the nearest others.
    ``fail``      fail with ``NUMA_NO_CAPACITY`` instead.
"""

from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

import attrs

from xapi_numa.core.numbers import is_decimal, parse_decimal, shown, trim
from xapi_numa.errors import InvalidArgument, NumaError

MODES = ("any", "best_effort", "preferred", "strict")
ON_EXHAUST = ("fallback", "fail")
NODES_SYNTAX = ("an ordered node list like 1,3,0 (ranges such as 0-1, and Xen's node:1 and nodes:0-1, allowed), "
                "nearest, a list ending in nearest, or empty")
MAX_NODES = 64
OTHER_CONFIG_KEYS = ("numa_mode", "numa_nodes", "numa_on_exhaust")
_STORED_KEY = dict(zip(("mode", "nodes", "on_exhaust"), OTHER_CONFIG_KEYS))  # a field -> its other_config key


def _node_id(text: str) -> int:
    """One node id of a policy's list: ASCII digits, below MAX_NODES (checked before converting)."""
    return parse_decimal(text, "nodes", "node ids 0..{}".format(MAX_NODES - 1), maximum=MAX_NODES - 1, what="node")


def _parse_node_list(text: str) -> Tuple[Tuple[int, ...], bool]:
    tokens = [trim(t) for t in text.split(",")]
    if any(t == "" for t in tokens):
        raise InvalidArgument("nodes", "{} has an empty entry".format(shown(text)), NODES_SYNTAX)
    nearest = tokens[-1] == "nearest"
    if nearest:
        tokens = tokens[:-1]
    nodes: List[int] = []
    for t in tokens:
        if t == "nearest":
            raise InvalidArgument("nodes", "'nearest' must come last in {}".format(shown(text)), NODES_SYNTAX)
        # Xen's cpu-list spelling of a node or a node range, as typed for xl
        t = t[len("nodes:"):] if t.startswith("nodes:") else t[len("node:"):] if t.startswith("node:") else t
        first, sep, second = t.partition("-")
        if not is_decimal(first) or (sep and not is_decimal(second)):
            why = "a range needs both ends, A-B" if sep and (not first or not second) else \
                "node ids are ASCII digits"
            raise InvalidArgument("nodes", "bad entry {} in {} ({})".format(shown(t), shown(text), why), NODES_SYNTAX)
        low = _node_id(first)
        high = _node_id(second) if sep else low
        if high < low:
            raise InvalidArgument("nodes", "bad range {} in {}".format(shown(t), shown(text)), NODES_SYNTAX)
        for n in range(low, high + 1):  # at most MAX_NODES ids
            if n in nodes:
                raise InvalidArgument("nodes", "node {} is listed twice in {}".format(n, shown(text)), NODES_SYNTAX)
            nodes.append(n)
    return tuple(nodes), nearest


ORDERED_SYNTAX = "an ordered node list like 1,3,0 (ranges such as 0-1, and Xen's node:1 and nodes:0-1, allowed)"


def parse_ordered_nodes(text: str, field: str = "nodes") -> Tuple[int, ...]:
    """A list of node ids in the order given (vnuma's pnodes), in a policy's syntax
    but without ``nearest``: at least one id (an empty entry is refused), none twice."""
    try:
        nodes, nearest = _parse_node_list(text)
    except InvalidArgument as err:
        raise InvalidArgument(field, err.detail, ORDERED_SYNTAX) from None
    if nearest:
        raise InvalidArgument(field, "{}: 'nearest' is a policy's word, not a node".format(shown(text)),
                              ORDERED_SYNTAX)
    return nodes


@attrs.frozen
class Policy:
    """A validated NUMA policy (immutable); ``str()`` is its canonical form."""

    mode: str = "best_effort"
    nodes: Tuple[int, ...] = ()
    nearest: bool = False
    on_exhaust: str = "fallback"

    @classmethod
    def parse(cls, mode: Optional[str] = None, nodes: Optional[str] = None,
              on_exhaust: Optional[str] = None) -> "Policy":
        """Validate the three strings; unset fields take their defaults."""
        m = (mode if mode not in (None, "") else "best_effort")
        if not isinstance(m, str) or trim(m) not in MODES:
            raise InvalidArgument("mode", f"unknown mode {mode!r}", ", ".join(MODES))
        m = trim(m)
        e = (on_exhaust if on_exhaust not in (None, "") else "fallback")
        if not isinstance(e, str) or trim(e) not in ON_EXHAUST:
            raise InvalidArgument("on_exhaust", f"unknown value {on_exhaust!r}", ", ".join(ON_EXHAUST))
        e = trim(e)
        node_list: Tuple[int, ...] = ()
        nearest = False
        if nodes is not None and trim(str(nodes)) != "":
            if not isinstance(nodes, str):
                raise InvalidArgument("nodes", f"expected a string, got {type(nodes).__name__}", NODES_SYNTAX)
            if len(nodes) > 512:
                raise InvalidArgument("nodes", "value is too long", NODES_SYNTAX)
            node_list, nearest = _parse_node_list(trim(nodes))
        if m == "any" and (node_list or nearest):
            raise InvalidArgument("nodes", "mode 'any' takes no node list (Xen chooses)",
                                  "leave nodes empty, or use best_effort, preferred or strict")
        if m == "any" and e == "fail":  # (nothing is placed, so nothing runs out: fail would never be acted on)
            raise InvalidArgument("on_exhaust", "mode 'any' places nothing, so no node runs out (Xen chooses)",
                                  "leave on_exhaust empty or fallback, or use best_effort, preferred or strict")
        return cls(m, node_list, nearest, e)

    @classmethod
    def from_other_config(cls, other_config: Dict[str, str]) -> "Policy":
        """The policy stored in a VM's other_config.  A bad stored value is named by
        its key (``other_config:numa_mode``): that is what the admin sets with
        ``xe vm-param-set`` and must fix, not a field of some command."""
        try:
            return cls.parse(other_config.get("numa_mode"), other_config.get("numa_nodes"),
                             other_config.get("numa_on_exhaust"))
        except InvalidArgument as err:
            key = _STORED_KEY.get(err.field, err.field)
            raise InvalidArgument("other_config:" + key, err.detail, err.allowed) from None

    @property
    def binding(self) -> bool:
        """Whether the VM's memory must not go past the nodes it is given (``strict``, or
        ``on_exhaust=fail``): a placement whose build Xen would spill elsewhere is refused."""
        return self.mode == "strict" or self.on_exhaust == "fail"

    @property
    def nodes_text(self) -> str:
        parts = [str(n) for n in self.nodes]
        if self.nearest:
            parts.append("nearest")
        return ",".join(parts)

    def to_other_config(self) -> Dict[str, str]:
        return {"numa_mode": self.mode, "numa_nodes": self.nodes_text, "numa_on_exhaust": self.on_exhaust}

    def to_dict(self) -> Dict[str, str]:
        return {"mode": self.mode, "nodes": self.nodes_text, "on_exhaust": self.on_exhaust}

    def __str__(self) -> str:
        text = f"mode={self.mode}"
        if self.nodes_text:
            text += f" nodes={self.nodes_text}"
        return text + f" on_exhaust={self.on_exhaust}"


def stored_or_default(other_config: Mapping[str, str]) -> Tuple[Policy, Optional[str]]:
    """The policy stored in a VM's other_config and None, or the default policy and why the
    stored one cannot be read (its error, naming the key to fix).  Settling a started VM
    applies that default and reports the error (a refusal would leave it boot-pinned);
    xapi-numad's homing, fix-up and rebalancer leave the VM alone (``strict`` with a typo
    in ``numa_nodes`` may be meant to stay where it is: the default is no guess to act on)."""
    try:
        return Policy.from_other_config(dict(other_config)), None
    except NumaError as err:
        return Policy(), err.message


def strict_forbids_move(policy: Policy, node: int, node_cpus: FrozenSet[int], hard: FrozenSet[int]) -> Optional[str]:
    """Why ``policy`` forbids moving a VM's memory to ``node`` by hand, or None.

    A strict VM's memory and vCPUs stay on its nodes, and its hard affinity there is the
    policy's, not an admin's: nothing would bring either back (the rebalancer and the
    fix-up leave strict VMs alone).  The node must be listed, or, where the engine chose
    the nodes (none listed, or ``nearest`` ones after the list), have CPUs (``node_cpus``:
    its own, or its nearest) the hard affinity reaches."""
    if policy.mode != "strict" or node in policy.nodes:
        return None
    if (policy.nearest or not policy.nodes) and node_cpus & hard:
        return None
    where = "node(s) {} (other_config:numa_nodes)".format(policy.nodes_text) if policy.nodes \
        else "the nodes it was placed on"
    return ("its policy is strict: its memory stays on {}, and node {} is not one of them; change "
            "other_config:numa_mode or numa_nodes first".format(where, node))
