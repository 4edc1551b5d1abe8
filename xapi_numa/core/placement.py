"""The placement engine: where a VM about to start should go.  Pure, no I/O.

Input: the host topology (through a :class:`Planner`, built once per host),
per-node free memory, memory reserved by other starts, and vCPU load; and a
:class:`Request` (vCPUs, memory, policy).  Output: a :class:`Placement` — the
nodes, the bytes Xen will put on each (the build's own overhead included, so
a reservation of them covers the whole build), the soft or hard CPU mask,
whether a fallback was taken, and a one-line reason.

What the chosen nodes become (the bytes on each, the build's overhead among them, and
the CPU mask) is :mod:`xapi_numa.core.placement_result`'s; nodes a policy lists are
placed by :mod:`xapi_numa.core.placement_listed`.
An admin's CPU mask is a bound beside the policy (:attr:`Request.within`): nodes
outside it count as full, and the rules below decide inside it.  A node without
CPUs (memory only) never holds a VM alone.

Choosing nodes when the policy does not list them:

* one node when the VM fits on one: enough memory, and for ``best_effort``
  at least as many *physical cores* as vCPUs (hyper-thread siblings share a
  core, so such a VM is better spread; other modes count threads).  Among the
  nodes that fit, ``SINGLE_NODE_RULE`` (:mod:`xapi_numa.core.single_node`):
  ``scored``, the node after which the host scores lowest on memory CV +
  0.75 x vCPU-per-core CV + 0.075 x ln(free memory / biggest hole) + 1.5 x the
  share of the host's starts (``NodeLoads.starts``: the sizes of the VMs placed
  here that fit a node, and this one) bigger than the biggest hole, so that
  nodes stay level while the holes the host's VMs need stay whole.

  Chosen by the start/stop quality benchmark, weights tuned on other seeds
  than the one it reports; what it meets, what it misses (the goals conflict
  on 2 nodes) and every rule tried are in :mod:`xapi_numa.core.single_node`.
* otherwise the set of nodes with the lowest maximum pairwise distance that
  fits, and among those the lowest mean distance over all ordered pairs, the
  diagonal included: that mean is the expected distance of a VM whose memory
  is striped evenly over the set and whose vCPUs run anywhere on it.
  Distances are taken symmetrically (max of both directions).

  Both exactly, without enumerating subsets: the maximum through maximal
  cliques of "distance <= threshold" (capacity adds up, so a threshold is
  feasible iff one of its cliques fits; past a budget, ``node_groups``), the mean by branch and bound over
  the fitting cliques' subsets (:mod:`xapi_numa.core.node_sets`; a budget
  bounds very large cliques, and a placement cut by it says so).
  Ties: fewer nodes, then the set after which the host is most level and
  least fragmented (the single-node rule's memory terms, with the VM's
  memory striped over the set as Xen would), then less vCPU load, then
  lower ids.
* a set must have at least as many cores (threads outside ``best_effort``) as
  the VM has vCPUs; when no set does, the constraint is dropped (and the
  placement says fallback).

A set (or a listed prefix) holds a VM only if that build keeps all of it there
(:class:`xapi_numa.core.set_room.BuildRoom`: a GiB none of its nodes has whole goes
to another node); a ``strict`` VM, or one with ``on_exhaust=fail``, that no set keeps is
refused, any other takes the set it would take otherwise and is held where Xen puts the rest.
"""

import itertools
from operator import sub
from typing import Dict, List, Optional, Sequence, Tuple

from xapi_numa.errors import InvalidArgument, NoCapacity
from xapi_numa.core.placement_values import NodeLoads, Placement, Request  # noqa: F401 (the engine's API)
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.topology import LOCAL_DISTANCE, Topology
from xapi_numa.core.units import PAGE_SHIFT, format_size
from xapi_numa.core.single_node import SINGLE_NODE_RULE, SINGLE_NODE_RULES, choose_node
from xapi_numa.core.start_sizes import NO_STARTS, StartSizes
from xapi_numa.core.overhead import NO_OVERHEAD, BuildOverhead  # noqa: F401
from xapi_numa.core.node_sets import (SEARCH_BUDGET, SubsetSearch, maximal_cliques,  # noqa: F401
                                      fitting_clique, node_groups, set_mean, striping_score)
from xapi_numa.core.set_room import BuildRoom, room_for_extents
from xapi_numa.core.placement_result import PlacementAssembly
from xapi_numa.core.placement_listed import place_listed


class Planner(PlacementAssembly):
    """Placement for one host topology; the per-topology work is done once.

    ``overhead``: what a build takes beyond the guest's RAM (counted in every
    placement and so in every reservation: :class:`PlacementAssembly`); ``single_node``:
    the rule among nodes that fit the VM alone (one of ``SINGLE_NODE_RULES``; the default was
    chosen by the quality benchmark, the others are kept so that it can show
    why).
    """

    def __init__(self, topology: Topology, overhead: BuildOverhead = BuildOverhead(),
                 single_node: str = SINGLE_NODE_RULE) -> None:
        if single_node not in SINGLE_NODE_RULES:
            raise InvalidArgument("single_node", f"unknown rule {single_node!r}", ", ".join(SINGLE_NODE_RULES))
        super().__init__(topology, overhead)
        self.single_node = single_node
        d = topology.distances
        columns = list(zip(*d))  # a SLIT table is nearly always symmetric: then it is its own max with its transpose
        self.sym = [list(row) for row in d] if columns == list(d) else \
            [list(map(max, row, column)) for row, column in zip(d, columns)]
        self.cores = topology.cores_per_node()
        self.sizes = [node.memory_size for node in topology.nodes]
        self.node_cpus = [node.cpus for node in topology.nodes]
        self.thresholds = sorted(set(itertools.chain.from_iterable(self.sym)) - {LOCAL_DISTANCE})  # (off-diagonal)
        # worked out on first need: most starts fit one node, and a start's dry run is a fresh process
        self._clique_members: Dict[int, Tuple[List[List[int]], bool]] = {}

    def clique_members(self, threshold: int) -> Tuple[List[List[int]], bool]:
        """Groups holding every set of nodes all within ``threshold`` of each other, and whether
        they are its maximal cliques (else the search checks the distances: ``node_groups``)."""
        if threshold not in self._clique_members:
            self._clique_members[threshold] = node_groups(self.sym, threshold)
        return self._clique_members[threshold]

    # --- set measures ---------------------------------------------------------------------
    def _distance_key(self, nodes: Sequence[int]) -> Tuple[int, float]:
        """(maximum pairwise distance, mean over ordered pairs with the diagonal)."""
        if len(nodes) == 1:
            return (10, 10.0)
        s = self.sym
        pairs = [s[a][b] for a in nodes for b in nodes]
        return (max(pairs), sum(pairs) / len(pairs))

    def _load(self, nodes: Sequence[int], vcpus_on: Sequence[int]) -> float:
        cpus = sum(self.pcpus[x] for x in nodes) or 1
        return sum(vcpus_on[x] for x in nodes) / cpus

    def fits_a_node(self, request: Request) -> bool:
        """Whether the VM would fit one node of an empty host: a node with as many physical cores
        as it has vCPUs and more memory than it has (a node of unknown size counts as big enough).
        The starts of such VMs are the sizes the single-node rule's split risk weighs."""
        return any(cores >= request.vcpus and (not size or request.memory < size)
                   for cores, size in zip(self.cores, self.sizes))

    def _cpus_for(self, request: Request) -> List[int]:
        """What counts against vCPUs: physical cores for best_effort, threads otherwise."""
        return self.cores if request.policy.mode == "best_effort" else self.pcpus

    # --- entry point ---------------------------------------------------------------------------
    def place(self, loads: NodeLoads, request: Request) -> Placement:
        n = self.n
        if len(loads.free) != n:
            raise InvalidArgument("loads", f"{len(loads.free)} entries for a host of {n} nodes")
        policy = request.policy
        # the whole build (every set, every total); on one node alone, its share of the overhead's
        # round plus the guest's memory (the other shares are reserved on the other nodes)
        need, one, vcpus = self.need(request, self.cpu_nodes), self.need(request), request.vcpus
        if policy.nodes:
            for node in policy.nodes:
                if node >= n:
                    raise InvalidArgument("nodes", f"node {node} does not exist on this host",
                                          f"nodes 0..{n - 1}")
        avail = list(map(sub, loads.free, loads.reserved))  # inline: this is the hot path
        if min(avail) < 0:
            avail = [a if a > 0 else 0 for a in avail]
        avail_raw = avail  # what the single-node rule weighs; avail: what counts as room
        avail = room_for_extents(avail, one)  # or a strict VM's memory would land outside its nodes
        # where the overhead's round finds room for its shares: every node, those outside the mask too
        # (xenopsd sizes the pool before it sets the vCPUs' hard affinity)
        reach = avail
        within = request.within
        if within is not None:
            if max(within) >= n:
                raise InvalidArgument("within", f"node {max(within)} does not exist on this host",
                                      f"nodes 0..{n - 1}")
            # outside the admin's mask is no room at all; the host's real state is still what is scored
            avail = [a if i in within else 0 for i, a in enumerate(avail)]
        listed = request.listed()
        history = (loads.starts, request.memory if self.fits_a_node(request) else 0)
        share = one - request.memory
        if share < need - request.memory:  # the shares of nodes with no room for theirs go to the chosen one
            one += share * sum(1 for i in range(n) if self.pcpus[i] and reach[i] < share)
        if policy.mode != "any" and not listed:
            best = self._best_single(avail, loads.vcpus, one, vcpus, self._cpus_for(request), avail_raw, history)
            if best >= 0:
                left = format_size(avail[best] - one)
                return self.placement_on_one(best, reach, request, False,
                                             f"fits on node {best} alone ({left} left there after it)")
        total, inside = sum(avail), need - self.shares_outside(request, reach)  # (what lands inside the mask)
        if total < inside:
            where = "the host has" if within is None else \
                f"nodes {format_ids(within)} (those {request.within_said}) have"
            raise NoCapacity(f"{where} {format_size(total)} available after reservations; "
                             f"the VM needs {format_size(inside)}", ("host", str(inside), str(total)))
        dma = [d >> PAGE_SHIFT for d in loads.dma]  # every node's free pages, zones and those outside a mask too
        room = BuildRoom([a >> PAGE_SHIFT for a in avail_raw], -(-(need - request.memory) >> PAGE_SHIFT),
                         -(-request.memory >> PAGE_SHIFT), request.dtype, policy.binding, self.overhead.round_of(
                             [i for i in range(n) if self.pcpus[i]]), dma, request.video >> PAGE_SHIFT)
        if policy.mode == "any":
            nodes = [i for i in range(n) if avail[i] > 0]
            over = "all nodes" if within is None else f"the nodes {request.within_said} ({format_ids(within)})"
            return self.placement_on(nodes, reach, request, room, False,
                                     f"mode any: no affinity, Xen stripes memory over {over}", striped_all=True)
        if listed:
            return place_listed(self, self._order(avail, loads.vcpus, request, need, history), avail, reach, request,
                                need, room)
        return self._place_chosen(avail, reach, loads.vcpus, request, need, one, room, history)

    def _best_single(self, avail: List[int], vcpus_on: Sequence[int], need: int, vcpus: int,
                     cpus: Optional[Sequence[int]], score_on: Optional[List[int]] = None,
                     history: Tuple[StartSizes, int] = (NO_STARTS, 0)) -> int:
        """The node chosen among those that hold the VM alone (``cpus=None``: any CPU count); -1 if none.
        ``score_on``: the free memory the rule weighs (default ``avail``, which says what fits);
        ``history``: the host's start sizes and this VM's memory if it fits a node (else 0)."""
        # a node without CPUs (memory only) never holds a VM alone, even with the CPU count relaxed
        fits = [i for i, a in enumerate(avail) if a >= need and (cpus[i] >= vcpus if cpus is not None
                                                                  else self.pcpus[i] > 0)]
        if not fits:
            return -1
        if len(fits) == 1:
            return fits[0]
        return choose_node(self.single_node, fits, avail if score_on is None else score_on, vcpus_on, self.cores,
                           vcpus, need, self.sizes, *history)

    # --- nodes chosen by the engine -------------------------------------------------------------
    def _place_chosen(self, avail: List[int], reach: List[int], vcpus_on: Sequence[int], request: Request,
                      need: int, one: int, room: BuildRoom, history: Tuple[StartSizes, int]) -> Placement:
        """No single node with enough memory and cores: spread, or relax the CPU count.
        ``need``: the whole build; ``one``: what one node alone takes of it; ``reach``: every node's
        room for its share of the overhead (:meth:`placement_on_one`)."""
        vcpus = request.vcpus
        what = "cores" if request.policy.mode == "best_effort" else "pCPUs"
        # a node without free memory joins no set, whatever cores it has
        no_set = f"no set of nodes with free memory has {vcpus} {what}"
        for relax in (False, True):
            if relax:
                best = self._best_single(avail, vcpus_on, one, vcpus, None, history=history)
                if best >= 0:
                    short = (f"no node that can hold it has {vcpus} {what} and on_exhaust=fail forbids spreading"
                             if request.policy.on_exhaust == "fail" else no_set)
                    return self.placement_on_one(best, reach, request, True,
                                                 f"fits on node {best} alone ({format_size(avail[best] - one)} left "
                                                 f"there after it); {short}, so its vCPUs share")
            if request.policy.on_exhaust == "fail":
                continue
            found = self._best_set(avail, vcpus_on, request, need, relax, room)
            if found is None and relax:  # only memory-only nodes hold it: their vCPUs borrow CPUs
                found = self._best_set(avail, vcpus_on, request, need, relax, room, borrow=True)
            if found is not None:
                nodes, _, exhausted = found
                if not relax and not any(avail[i] >= need for i in range(self.n)):
                    why = f"no single node has {format_size(need)} available"
                elif not relax:
                    why = f"no node with {format_size(need)} available has {vcpus} {what}"
                elif any(avail[i] >= need for i in range(self.n)):  # only memory-only nodes do
                    why = f"no node with CPUs has {format_size(need)} available"
                else:
                    why = f"no single node has {format_size(need)} available"
                why += f"; nodes {','.join(map(str, nodes))} (max distance {self._distance_key(nodes)[0]}) hold it"
                if relax:
                    why += f"; {no_set}, so its vCPUs share"
                if exhausted:
                    why += f"; search stopped after {SEARCH_BUDGET} sets (best found)"
                return self.placement_on(nodes, reach, request, room, relax, why + room.spill(nodes))
        most = max(range(self.n), key=lambda i: avail[i])
        if request.policy.on_exhaust == "fail":
            raise NoCapacity(f"no single node can hold {format_size(need)} with {vcpus} {what} (at most "
                             f"{format_size(avail[most])} on node {most}) and on_exhaust=fail forbids spreading",
                             ("node", str(need), str(avail[most])))
        lacking = room.lacking(range(self.n), avail, need)  # (a strict VM that no set with the room keeps)
        raise NoCapacity(f"no set of nodes has {format_size(need)} available (at most {format_size(avail[most])} "
                         f"on node {most}, {format_size(sum(avail))} on the host{lacking})",
                         ("host", str(need), str(sum(avail))))

    def _best_set(self, cap: List[int], vcpus_on: Sequence[int], request: Request, need: int, relax: bool,
                  room: BuildRoom, borrow: bool = False):
        """Lowest max distance exactly (threshold by threshold), then lowest mean, among the sets
        Xen's build keeps the VM on (``room``; then, not strict, any with the room):
        (nodes, max distance, budget exhausted) or None.  ``borrow``: a memory-only node
        counts as having a CPU, as its vCPUs run on the nearest CPUs (cpus_near); tried
        only when no set with CPUs of its own holds the VM (the CPU nodes full)."""
        cap, need = room.for_sets(cap, need)  # (what of the overhead's round lands on a set)
        vneed = 1 if relax else request.vcpus  # relaxed, a set still needs one CPU for its vCPUs
        cpus = self._cpus_for(request)
        if borrow:
            cpus = [c or 1 for c in cpus]
        for keep in room.passes:
            for t in self.thresholds:
                fitting, (groups, cliques) = [], self.clique_members(t)
                for clique in groups:
                    members = [m for m in clique if cap[m] > 0]  # nodes without memory add nothing
                    if sum(cap[m] for m in members) >= need and sum(cpus[m] for m in members) >= vneed:
                        fitting.append(members)
                if not fitting:
                    continue
                # the best set with the room first: if the build keeps it, it is the best of those that do,
                # for one check; else the search again, checking each set that would become the best
                for keeps in (None, room.keeps) if keep else (None,):
                    first = None if cliques else fitting_clique(self.sym, t, cap, cpus, need, vneed, keeps)
                    if first == []:  # (groups that are not cliques: no set of nodes within t fits, or is kept)
                        break
                    search = SubsetSearch(self.sym, cap, cpus, vcpus_on, self.pcpus, need, vneed,
                                          striping_score(cap, self.sizes, need), keeps, None if cliques else t, first)
                    for members in fitting:
                        search.run(members)
                    if search.best is None:  # (none fits: none that the build keeps either)
                        break
                    if not keep or room.keeps(search.best[-1]):
                        return list(search.best[-1]), t, search.exhausted
        return None

    # --- nodes listed by the policy ---------------------------------------------------------------
    def _order(self, avail: List[int], vcpus_on: Sequence[int], request: Request, need: int,
               history: Tuple[StartSizes, int]) -> List[int]:
        policy, allowed = request.policy, self.allowed(request)
        order = [node for node in policy.nodes if node in allowed]
        if policy.nearest:
            if order:
                start = order[0]
            else:
                # the node the single-node rule takes, or the one with CPUs and most room
                start = self._best_single(avail, vcpus_on, need, request.vcpus, None, history=history)
                if start < 0:
                    start = min(allowed, key=lambda i: (not self.pcpus[i], -avail[i], self._load([i], vcpus_on), i))
                order = [start]
            order += [m for m in self.topology.nearest(start) if m not in order and m in allowed]
        return order
