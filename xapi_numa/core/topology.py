"""The host's NUMA topology as immutable values.

A :class:`Topology` owns: the nodes (id, CPUs, memory size and free memory
when read), the SLIT distance matrix, and for every CPU its core, socket and
node (a CPU not online is on none: :data:`OFFLINE`).  It validates itself on
construction and offers the lookups the planners need.  Builders read raw
arrays (what libxc returns) or the text of ``xl info -n`` (its rows read by
:mod:`xl_info`); the user's syntax for CPU and node sets goes through
:mod:`cpuset`, bounded by this host's ids, and ``--distances`` through
:func:`parse_distances`.
"""

import bisect
import collections
import itertools
import operator
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core import cpuset
from xapi_numa.core.numbers import parse_decimal, shown
from xapi_numa.core.xl_info import XL_FIELD, xl_info_rows
from xapi_numa.errors import InvalidArgument

LOCAL_DISTANCE = 10
UNREACHABLE_DISTANCE = 0xFF
# the node of a CPU that is not online: parked (a host booted with smt=0, xen-hptool
# cpu-offline) or not there (a hotplug slot) among the online ones; on no node, in no set
OFFLINE = -1
_DISTANCES = bytes(range(LOCAL_DISTANCE, UNREACHABLE_DISTANCE))  # what a SLIT entry may be (off the diagonal)


@attrs.frozen
class CpuInfo:
    """One physical CPU: its core, socket and NUMA node."""

    id: int
    core: int
    socket: int
    node: int


@attrs.frozen
class Node:
    """One NUMA node; ``memory_free`` is as of when the topology was read."""

    id: int
    cpus: FrozenSet[int] = attrs.field(converter=frozenset)
    memory_size: int = 0
    memory_free: int = 0


def _distances_fine(n: int, distances: Sequence[Sequence[int]]) -> bool:
    """Whether the matrix is square, integers, 10 on the diagonal and 11..254 elsewhere:
    checked in C-speed passes (every start reads the topology; the entry-by-entry
    walk that names what is wrong runs only when something is)."""
    if len(distances) != n or any(len(row) != n for row in distances):
        return False
    flat = list(itertools.chain.from_iterable(distances))
    if not set(map(type, flat)) <= {int}:
        return False
    try:
        raw = bytes(flat)  # (every one 0..255, as bytes: then the passes below are C's byte loops)
    except ValueError:
        return False
    return (raw[::n + 1] == bytes([LOCAL_DISTANCE]) * n and raw.count(LOCAL_DISTANCE) == n
            and not raw.translate(None, _DISTANCES))


def _validate_distances(n: int, distances: Sequence[Sequence[int]]) -> None:
    if _distances_fine(n, distances):
        return
    field = "distances"
    if len(distances) != n:
        raise InvalidArgument(field, f"matrix has {len(distances)} rows for {n} nodes; it must be square")
    for i, row in enumerate(distances):
        if len(row) != n:
            raise InvalidArgument(field, f"row {i} has {len(row)} entries for {n} nodes; it must be square")
        for j, d in enumerate(row):
            if not isinstance(d, int) or isinstance(d, bool):
                raise InvalidArgument(field, f"distance {i}->{j} is {d!r}, not an integer")
            if d == UNREACHABLE_DISTANCE:
                raise InvalidArgument(field, f"node {j} is unreachable from node {i} (distance 0xFF)",
                                      "10 on the diagonal, 11..254 elsewhere")
            if i == j and d != LOCAL_DISTANCE:
                raise InvalidArgument(field, f"distance {i}->{i} is {d}; a node's distance to itself must be 10")
            if i != j and not LOCAL_DISTANCE < d < UNREACHABLE_DISTANCE:
                raise InvalidArgument(field, f"distance {i}->{j} is {d}", "11..254 between different nodes")


def _nodes_match_cpus(nodes: Sequence[Node], cpu_node: Sequence[int]) -> bool:
    """Whether the nodes' CPUs are exactly the CPUs the per-CPU table puts on each: every
    CPU a node lists is in the table on that node, and they list as many CPUs as the table
    has (so none twice and none left out).  C-speed passes, no regrouping: every start
    builds a topology."""
    total = len(cpu_node) - cpu_node.count(OFFLINE)
    if not set(map(type, cpu_node)) <= {int}:
        return False
    listed = list(itertools.chain.from_iterable(n.cpus for n in nodes))  # every node's CPUs, node by node
    if not set(map(type, listed)) <= {int}:  # (0.0 in a set equals 0: the slow, exact way)
        on = cpus_by_node(cpu_node) or {}
        return not set(on) - {n.id for n in nodes} and all(n.cpus == on.get(n.id, frozenset()) for n in nodes)
    if len(listed) != total:
        return False
    if listed and (max(listed) >= len(cpu_node) or min(listed) < 0):
        return False
    # the table's node of each CPU listed, against the node that lists it
    return list(map(cpu_node.__getitem__, listed)) == list(itertools.chain.from_iterable(
        itertools.repeat(n.id, len(n.cpus)) for n in nodes))


def cpus_by_node(cpu_node: Sequence[int]) -> Optional[Dict[int, FrozenSet[int]]]:
    """Node -> its CPUs, from each CPU's node; None if a node is no integer.  Sorted and
    grouped in C (a start reads the topology; a loop over the CPUs was a third of it); a
    table already in node order (each node's CPUs numbered together) is cut where each
    node's CPUs end, without sorting."""
    if not set(map(type, cpu_node)) <= {int}:
        return None
    table = list(cpu_node)
    grouped: Dict[int, FrozenSet[int]] = {}
    if table == sorted(table):
        start = 0
        for node in sorted(set(table)):
            end = bisect.bisect_right(table, node, start)
            grouped[node] = frozenset(range(start, end))
            start = end
    else:
        node_of = table.__getitem__
        grouped = {node: frozenset(cpus)
                   for node, cpus in itertools.groupby(sorted(range(len(table)), key=node_of), key=node_of)}
    grouped.pop(OFFLINE, None)
    return grouped


DISTANCES_SYNTAX = 'rows of comma-separated distances separated by ";", e.g. "10,21;21,10"'


def parse_distances(text: str, nr_nodes: int, field: str = "--distances") -> List[List[int]]:
    """``"10,21;21,10"`` -> a square SLIT matrix (rows separated by ';'); ASCII digits only.

    Only the shape and the numbers are checked here; :class:`Topology` checks the values.
    """
    if not isinstance(text, str):
        raise InvalidArgument(field, "expected text, got {}".format(type(text).__name__), DISTANCES_SYNTAX)
    rows = [[c.strip(" \t") for c in row.split(",")] for row in text.split(";")]
    if len(rows) != nr_nodes or any(len(row) != nr_nodes for row in rows):
        raise InvalidArgument(field, "{} is not a {}x{} matrix; it must be square, one row per node".format(
            shown(text), nr_nodes, nr_nodes), DISTANCES_SYNTAX)
    return [[parse_decimal(c, field, DISTANCES_SYNTAX, maximum=UNREACHABLE_DISTANCE, what="distance")
             for c in row] for row in rows]


@attrs.frozen
class Topology:
    """Nodes, CPUs and distances of one host (validated, immutable).

    CPU ``i`` is on node ``cpu_node[i]``, core ``cpu_core[i]`` and socket
    ``cpu_socket[i]``; a CPU that is not online has node :data:`OFFLINE` and is in no
    node's CPUs, nor in :attr:`all_cpus` (Xen's ids are kept: a parked CPU leaves a
    gap).  :attr:`cpus` gives the same as records, made on first use (a start reads
    the topology and asks for none: on a host of 256 CPUs making them was a tenth of
    its decision)."""

    nodes: Tuple[Node, ...] = attrs.field(converter=tuple)
    distances: Tuple[Tuple[int, ...], ...] = attrs.field(converter=lambda m: tuple(tuple(r) for r in m))
    cpu_node: Tuple[int, ...] = attrs.field(converter=tuple)
    cpu_core: Tuple[int, ...] = attrs.field(converter=tuple)
    cpu_socket: Tuple[int, ...] = attrs.field(converter=tuple)
    # derived once: asked for every vCPU of every domain when a start counts homes
    _all_cpus: FrozenSet[int] = attrs.field(init=False, eq=False, repr=False)
    _cpus: Optional[Tuple[CpuInfo, ...]] = attrs.field(init=False, eq=False, repr=False, default=None)
    # (the per-CPU table, the nodes' CPU sets) when from_arrays grouped these very sets from this
    # very table: the nodes then match the table by construction and are not checked again (a
    # start builds a topology); other sets or another table (a hand's, an evolve's) are checked
    _grouped: Optional[Tuple[Tuple[int, ...], Tuple[FrozenSet[int], ...]]] = attrs.field(
        default=None, kw_only=True, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_all_cpus", frozenset(range(len(self.cpu_node))) if OFFLINE not in self.cpu_node
                           else frozenset(c for c, n in enumerate(self.cpu_node) if n != OFFLINE))
        if not self.nodes:
            raise InvalidArgument("nodes", "a host has at least one node")
        ids = [n.id for n in self.nodes]
        if ids != list(range(len(ids))):
            raise InvalidArgument("nodes", f"node ids must be 0..{len(ids) - 1} in order, got {ids}")
        if not len(self.cpu_core) == len(self.cpu_socket) == len(self.cpu_node):
            raise InvalidArgument("cpus", "per-CPU arrays differ in length")
        _validate_distances(len(self.nodes), self.distances)
        if not self._grouped_here() and not _nodes_match_cpus(self.nodes, self.cpu_node):
            self._refuse_cpus()

    def _grouped_here(self) -> bool:
        """Whether the nodes' CPU sets are, object for object, those grouped from this table."""
        if self._grouped is None:
            return False
        table, sets = self._grouped
        return table is self.cpu_node and len(sets) == len(self.nodes) and all(
            map(operator.is_, sets, [n.cpus for n in self.nodes]))

    def _refuse_cpus(self) -> None:
        """Say which CPU the nodes and the per-CPU table disagree on."""
        for cpu, node in enumerate(self.cpu_node):
            if node == OFFLINE and not any(cpu in n.cpus for n in self.nodes):
                continue
            if not 0 <= node < len(self.nodes):
                raise InvalidArgument("cpus", f"CPU {cpu} is on node {node}, which does not exist")
            if cpu not in self.nodes[node].cpus:
                raise InvalidArgument("cpus", f"CPU {cpu} is not listed by node {node}")
        raise InvalidArgument("nodes", "nodes list CPUs that the CPU table does not have")

    @property
    def cpus(self) -> Tuple[CpuInfo, ...]:
        """Every CPU's record, by id."""
        if self._cpus is None:
            object.__setattr__(self, "_cpus", tuple(
                CpuInfo(i, core, socket, node)
                for i, (core, socket, node) in enumerate(zip(self.cpu_core, self.cpu_socket, self.cpu_node))))
        return self._cpus

    def cores_per_node(self) -> List[int]:
        """Physical cores of each node: its CPUs' distinct (socket, core) (0 for memory only)."""
        per_node = collections.Counter(map(operator.itemgetter(0), set(zip(self.cpu_node, self.cpu_socket,
                                                                            self.cpu_core))))
        return [per_node[n.id] for n in self.nodes]

    # --- lookups -----------------------------------------------------------
    @property
    def node_ids(self) -> FrozenSet[int]:
        return frozenset(n.id for n in self.nodes)

    @property
    def all_cpus(self) -> FrozenSet[int]:
        return self._all_cpus

    @property
    def node_cpus(self) -> Dict[int, FrozenSet[int]]:
        return {n.id: n.cpus for n in self.nodes}

    def node_of(self, cpu: int) -> int:
        """CPU ``cpu``'s node; a CPU the host does not have is refused (an index would wrap or fail)."""
        if not 0 <= cpu < len(self.cpu_node) or self.cpu_node[cpu] == OFFLINE:
            raise InvalidArgument("cpu", str(cpu), "an online CPU: {}".format(cpuset.format_ids(self._all_cpus)))
        return self.cpu_node[cpu]

    def _node(self, node: int) -> Node:
        if not 0 <= node < len(self.nodes):
            raise InvalidArgument("node", str(node), "0..{}".format(len(self.nodes) - 1))
        return self.nodes[node]

    def distance(self, a: int, b: int) -> int:
        return self.distances[a][b]

    def nearest(self, node: int) -> List[int]:
        """The other nodes by distance from ``node``, nearest first (ties: lower id)."""
        d = self.distances[self._node(node).id]
        return sorted((j for j in range(len(self.nodes)) if j != node), key=lambda j: (d[j], j))

    def cpus_of_nodes(self, nodes: Iterable[int]) -> FrozenSet[int]:
        return frozenset().union(*(self._node(n).cpus for n in nodes))

    def cpus_near(self, nodes: Iterable[int], allowed: Optional[Iterable[int]] = None) -> FrozenSet[int]:
        """The CPUs to run vCPUs whose memory is on ``nodes``: those nodes' own; for nodes
        with none (memory-only), those of the nearest nodes that have CPUs (among
        ``allowed`` nodes if any of them has), by SLIT distance from the lowest of them
        (ties all taken).  Never empty for some nodes on a host with CPUs (an empty mask
        is no affinity Xen takes); empty for no nodes.  The one rule for placement, the
        boot pin, settling and the fix-up."""
        ids = sorted(nodes)
        cpus = self.cpus_of_nodes(ids)
        if cpus or not ids:  # (the usual case: nothing to look for)
            return cpus
        with_cpus = [n.id for n in self.nodes if n.cpus]
        if allowed is not None:
            allowed = set(allowed)  # (once, not per node)
            with_cpus = [m for m in with_cpus if m in allowed] or with_cpus
        if not with_cpus:
            return cpus
        nearest = min(self.distance(ids[0], m) for m in with_cpus)
        return self.cpus_of_nodes(m for m in with_cpus if self.distance(ids[0], m) == nearest)

    def nodes_of_cpus(self, cpus: Iterable[int]) -> FrozenSet[int]:
        return frozenset(map(self.node_of, cpus))

    def memory_total(self) -> int:
        return sum(n.memory_size for n in self.nodes)

    # --- user syntax ---------------------------------------------------------
    def parse_cpus(self, text: str, field: str = "cpus") -> FrozenSet[int]:
        return cpuset.parse_cpus(text, self.all_cpus, self.node_cpus, field)

    def parse_nodes(self, text: str, field: str = "nodes") -> FrozenSet[int]:
        return cpuset.parse_nodes(text, self.node_ids, field)

    def format_cpus(self, cpus: Iterable[int]) -> str:
        return cpuset.format_cpus(frozenset(cpus), self.all_cpus)

    # --- builders ------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        cpu_to_node: Sequence[int],
        distances: Sequence[Sequence[int]],
        memory_size: Sequence[int],
        memory_free: Optional[Sequence[int]] = None,
        cpu_to_core: Optional[Sequence[int]] = None,
        cpu_to_socket: Optional[Sequence[int]] = None,
    ) -> "Topology":
        """Build from per-CPU and per-node arrays (libxc's cputopo/numainfo)."""
        nr_nodes = len(memory_size)
        free = list(memory_free) if memory_free is not None else list(memory_size)
        if len(free) != nr_nodes:
            raise InvalidArgument("memory_free", f"{len(free)} entries for {nr_nodes} nodes")
        cores = cpu_to_core if cpu_to_core is not None else range(len(cpu_to_node))
        sockets = cpu_to_socket if cpu_to_socket is not None else cpu_to_node
        by_node = cpus_by_node(cpu_to_node)
        if by_node is None or set(by_node) - set(range(nr_nodes)):
            cpu, node = next((c, n) for c, n in enumerate(cpu_to_node)
                             if type(n) is not int or not (0 <= n < nr_nodes or n == OFFLINE))
            raise InvalidArgument("cpus", f"CPU {cpu} is on node {node}, which does not exist")
        sets = tuple(by_node.get(n, frozenset()) for n in range(nr_nodes))
        nodes = [Node(n, sets[n], memory_size[n], free[n]) for n in range(nr_nodes)]
        table = tuple(cpu_to_node)  # (the one the topology keeps: its converter leaves a tuple as it is)
        return cls(nodes, distances, table, cores, sockets, grouped=(table, sets))

    @classmethod
    def of_cpus(cls, nodes: Sequence[Node], distances: Sequence[Sequence[int]],
                cpus: Sequence[CpuInfo]) -> "Topology":
        """Build from nodes and CPU records (their ids 0..N-1 in order)."""
        if [c.id for c in cpus] != list(range(len(cpus))):
            raise InvalidArgument("cpus", "CPU ids must be 0..N-1 in order")
        return cls(nodes, distances, [c.node for c in cpus], [c.core for c in cpus], [c.socket for c in cpus])

    @classmethod
    def uniform(cls, nr_nodes: int, cpus_per_node: int, memory_per_node: int,
                distances: Optional[Sequence[Sequence[int]]] = None) -> "Topology":
        """A symmetric host: node n has CPUs n*C..n*C+C-1 on socket n."""
        if nr_nodes < 1 or cpus_per_node < 1:
            raise InvalidArgument("nodes", "need at least one node with at least one CPU")
        if distances is None:
            distances = [[LOCAL_DISTANCE if i == j else 20 for j in range(nr_nodes)] for i in range(nr_nodes)]
        cpu_to_node = [c // cpus_per_node for c in range(nr_nodes * cpus_per_node)]
        cores = [c % cpus_per_node for c in range(nr_nodes * cpus_per_node)]
        return cls.from_arrays(cpu_to_node, distances, [memory_per_node] * nr_nodes,
                               cpu_to_core=cores, cpu_to_socket=cpu_to_node)

    @classmethod
    def from_xl_info(cls, text: str) -> "Topology":
        """Build from the text of ``xl info -n`` (memory there is in MiB)."""
        cpu_rows, node_rows = xl_info_rows(text)
        if not cpu_rows or not node_rows:
            raise InvalidArgument("xl info -n", "no cpu_topology or numa_info section found")
        cpu_rows.sort()
        node_rows.sort()
        for what, rows in (("CPU", cpu_rows), ("node", node_rows)):
            if [r[0] for r in rows] != list(range(len(rows))):
                # xl skips offline CPUs and invalid nodes; renumbering them would misplace everything
                raise InvalidArgument(XL_FIELD, "{} ids are not 0..{} without gaps or repeats (an offline {}?)".format(
                    what, len(rows) - 1, what))
        mib = 1 << 20
        return cls.from_arrays(
            cpu_to_node=[r[3] for r in cpu_rows],
            cpu_to_core=[r[1] for r in cpu_rows],
            cpu_to_socket=[r[2] for r in cpu_rows],
            distances=[r[3] for r in node_rows],
            memory_size=[r[1] * mib for r in node_rows],
            memory_free=[r[2] * mib for r in node_rows],
        )

    def with_free(self, free: Mapping[int, int]) -> "Topology":
        """The same host with per-node free memory replaced."""
        nodes = [attrs.evolve(n, memory_free=free.get(n.id, n.memory_free)) for n in self.nodes]
        return attrs.evolve(self, nodes=nodes)
