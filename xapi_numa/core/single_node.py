"""The rule that picks one node among those that hold a VM alone.  Pure.

The default, ``scored``, takes the node after which the host is most even
and least fragmented: for each node that fits it scores the state the host
would be in with the VM there,

    CV(memory used per node) + CPU_WEIGHT * CV(vCPUs per core per node)
        + FRAG_WEIGHT * ln(free memory on the host / biggest free memory on one node)

(CV: coefficient of variation over nodes) and takes the lowest, then the
lower node id.  The last term (:func:`fragmentation`) is 0 when all free
memory is on one node and ln(k) when it is spread evenly over k nodes: a VM
bigger than the biggest hole but smaller than the free memory is split, and
with VM sizes spread over a log scale (1/128 of a node to a whole one) that
chance grows with this logarithm.  It asks nothing of the size mix, and it
weighs most when the host is full, where splits happen, while the memory CV
weighs most when it is not.  The placement engine breaks ties between
equally close node sets with the same measure (memory CV plus
``FRAG_WEIGHT`` x fragmentation after the VM is striped over the set).

The other rules stay so that the quality benchmark can show the trade-off:

* ``hole``: the previous default: CV(memory) + CV(vCPUs) - HOLE_WEIGHT x
  (biggest free memory left / node size);
* ``worst``: most headroom (levels memory, but big VMs later find no hole);
* ``best``: tightest fit (keeps holes, piles vCPUs and memory on few nodes);
* ``balanced``: least vCPU load (within one VM's worth), then tightest fit;
* ``spare``: never the node with the biggest hole, then least vCPU load and
  most headroom (fewest splits, worst balance).

Why ``scored``, and what it does not meet:

  Chosen with the start/stop quality benchmark (``bench/bench_quality.py``,
  16 hosts of 2-16 nodes, 1500 starts each), its weights on trace seeds 1-6
  only (FRAG_WEIGHT 0.02-0.3 x CPU_WEIGHT 0.5-1.0), then checked on seed 7
  (the one ``make bench`` reports) and seeds 8-9, never used to choose.
  Misses of the issue's goals against the best baseline per trace (memory
  CV against the baselines that place VMs), ``scored`` / ``hole`` (both
  with the new set tie-break):

  =========================  ===============  ===============  ==============
  goal (ours <= best)        seeds 1-6 (96)   seed 7 (16)      seeds 8-9 (32)
  =========================  ===============  ===============  ==============
  split share                42 / 78          8 / 9            18 / 25
  mean distance              24 / 24          4 / 4            8 / 8
  memory CV                  21 / 17          10 / 10          5 / 1
  vCPU CV (<= 1.1 x libxl)   4 / 3            0 / 0            0 / 1
  =========================  ===============  ===============  ==============

  (mean ratio ours / best baseline for split: 1.036 / 1.118 on seeds 1-6,
  0.994 / 1.004 on seed 7; the fully old engine missed 21 goals on seed 7,
  this one 22, and 47 against 31 on seeds 8-9.)  Refusals are never more.

  The goals conflict on 2 nodes.  There the memory imbalance D between the
  two nodes *is* the head room of the bigger hole ((free + D) / 2), so each
  split avoided costs memory balance one for one, and a split VM is at
  distance 15.5 however its memory divides, so mean distance follows the
  split share.  xenopsd (round robin by use count) splits least, libxl (fewest
  vCPUs first) balances memory best; no weight of this rule beats both: on 2
  nodes, FRAG_WEIGHT 0-1 gives split 4.5-5.7 % for memory CV 0.157-0.172 on
  seed 7 (need <= 4.2 % and <= 0.159), 4.5-5.5 % for 0.155-0.187 on seed 1
  (need 3.8 %, 0.175).  Misses elsewhere are small: memory CV within 4 %
  on seed 7, split on 4 nodes 6.3 % against 5.5 %.  Per trace, 2-4 VMs out
  of about 1000 separate the rules; a rule's rank against one baseline
  changes from seed to seed.

  Also tried and worse overall (same seeds): best fit when the host's free
  memory is under 0.3-0.5 node (else worst fit); keeping a hole of 0.25-0.75
  node (penalty or lexicographic first); best fit for VMs under 1/32-1/8
  node; fragmentation weighted by fill; homing a VM that fits no node's free
  memory on the node holding most of it and letting Xen spill the rest
  (distance met on all 48 traces of seeds 1-3, but memory CV missed on
  25-42 of them and vCPU CV on 6-17: it leaves all the free memory on one
  node; settling would also spread its vCPUs over the spill node).  The build overhead is
  counted alike where it can be: the replay lands the whole build for every
  rule, and libxl is given the same build size as ours; xenopsd claims the
  guest RAM only (as it does), so about one in seven of its "splits" is a
  few MiB of overhead spilling from a full node (counted as a split, costing
  almost no distance).
"""
import math
from typing import List, Sequence, Tuple

from xapi_numa.core.topology import Topology

SINGLE_NODE_RULES = ("scored", "hole", "spare", "balanced", "best", "worst")
SINGLE_NODE_RULE = "scored"
# Weights of ``scored`` against the memory CV, chosen on seeds 1-6 of the
# quality benchmark (seed 7, the one it reports, was not used to choose them).
CPU_WEIGHT = 0.75
FRAG_WEIGHT = 0.15
# Weight of the biggest hole left, in node sizes, in the ``hole`` rule (the
# previous default, kept so that the benchmark shows the difference).
HOLE_WEIGHT = 0.1


def core_count(topology: Topology, node: int) -> int:
    """Physical cores of a node: distinct (socket, core) of its CPUs."""
    return len({(topology.cpus[c].socket, topology.cpus[c].core) for c in topology.nodes[node].cpus}) or 1


def fragmentation(free_total: int, biggest_hole: int) -> float:
    """ln(free memory on the host / the largest free memory on one node): 0 when all
    of it is on one node (any VM the host can hold fits one node), ln(k) when it is
    spread evenly over k nodes.  A VM between the biggest hole and the total free
    memory is split; under sizes spread evenly on a log scale, the chance of that
    grows with this logarithm."""
    if free_total <= 0 or biggest_hole <= 0:
        return 0.0
    return math.log(free_total / biggest_hole)


def _moments(values: Sequence[float]) -> Tuple[float, float]:
    return sum(values), sum(v * v for v in values)


def _cv_after(s1: float, s2: float, n: int, old: float, add: float) -> float:
    """Coefficient of variation of ``n`` values (sum ``s1``, sum of squares ``s2``)
    after ``add`` is added to one of them that was ``old``; O(1) per candidate."""
    s1 += add
    s2 += 2 * old * add + add * add
    mean = s1 / n
    if mean <= 0:
        return 0.0
    return math.sqrt(max(s2 / n - mean * mean, 0.0)) / mean


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (population standard deviation over the mean; 0 for a zero mean)."""
    s1, s2 = _moments(values)
    return _cv_after(s1, s2, len(values), 0.0, 0.0)


def used_memory(avail: Sequence[int], sizes: Sequence[int]) -> List[int]:
    """Bytes in use per node (size less available; never below zero)."""
    return [max(sizes[i], avail[i]) - avail[i] for i in range(len(avail))]


def _scored(fits: List[int], avail: Sequence[int], vcpus_on: Sequence[int], cores: Sequence[int],
            vcpus: int, need: int, sizes: Sequence[int], hole_rule: bool = False) -> int:
    n = len(avail)
    used = used_memory(avail, sizes)
    load = [vcpus_on[i] / cores[i] for i in range(n)]
    mem1, mem2 = _moments(used)
    cpu1, cpu2 = _moments(load)
    scale = float(max(max(sizes), max(avail), 1))
    free_after = sum(avail) - need
    # the biggest hole elsewhere: the largest free memory, or the second
    # largest when the candidate is the node that has the largest
    order = sorted(range(n), key=lambda i: -avail[i])
    first, second = order[0], (avail[order[1]] if n > 1 else 0)
    best_key, best = None, fits[0]
    for i in fits:
        hole = max(avail[i] - need, second if i == first else avail[first])
        memory_cv = _cv_after(mem1, mem2, n, used[i], need)
        cpu_cv = _cv_after(cpu1, cpu2, n, load[i], vcpus / cores[i])
        if hole_rule:
            score = memory_cv + cpu_cv - HOLE_WEIGHT * hole / scale
        else:
            score = memory_cv + CPU_WEIGHT * cpu_cv + FRAG_WEIGHT * fragmentation(free_after, hole)
        key = (score, i)
        if best_key is None or key < best_key:
            best_key, best = key, i
    return best


def choose_node(rule: str, fits: List[int], avail: Sequence[int], vcpus_on: Sequence[int],
                cores: Sequence[int], vcpus: int, need: int = 0, sizes: Sequence[int] = ()) -> int:
    """One of ``fits`` (at least two nodes that hold the VM alone) by ``rule``.

    ``avail``: bytes available per node; ``vcpus_on``: vCPUs homed per node;
    ``cores``: physical cores per node; ``need``: bytes the build takes;
    ``sizes``: each node's memory size (bytes; 0 = unknown).
    """
    def load(i: int) -> float:
        return vcpus_on[i] / cores[i]

    if rule in ("scored", "hole"):
        return _scored(fits, avail, vcpus_on, cores, vcpus, need, sizes or [0] * len(avail), rule == "hole")
    if rule == "worst":
        return min(fits, key=lambda i: (-avail[i], load(i), i))
    if rule == "best":
        return min(fits, key=lambda i: (avail[i], load(i), i))
    pool = fits
    if rule == "spare":
        # keep the biggest hole for the next big VM
        big = max(fits, key=lambda i: (avail[i], -i))
        pool = [i for i in fits if i != big]
    # the least loaded nodes (vCPUs per core, within one VM's worth) ...
    least = min(load(i) for i in pool)
    pool = [i for i in pool if load(i) <= least + vcpus / cores[i]]
    if rule == "spare":
        # ... and among them the most headroom, which keeps memory level
        return min(pool, key=lambda i: (-avail[i], load(i), i))
    # balanced: ... and among them the tightest fit, which keeps big holes
    return min(pool, key=lambda i: (avail[i], load(i), i))
