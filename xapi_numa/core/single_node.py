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
chance grows with this logarithm.  The free memory after the VM is the same
whichever node takes it, so the term only tells apart the node that holds
the biggest hole: taking the VM there costs FRAG_WEIGHT x ln(biggest hole /
the larger of what it leaves there and the second biggest hole), any other
node costs 0 (capping the free memory at a node's size, as a VM bigger than
a node is never "split", changes no choice).  The placement engine breaks
ties between equally close node sets with the same measure (memory CV plus
``FRAG_WEIGHT`` x fragmentation after the VM is striped over the set).

The other rules stay so that the quality benchmark can show the trade-off:

* ``hole``: the previous default: CV(memory) + CV(vCPUs) - HOLE_WEIGHT x
  (biggest free memory left / node size);
* ``worst``: most headroom (levels memory, but big VMs later find no hole);
* ``best``: tightest fit (keeps holes, piles vCPUs and memory on few nodes);
* ``balanced``: least vCPU load (within one VM's worth), then tightest fit;
* ``spare``: never the node with the biggest hole, then least vCPU load and
  most headroom (fewest splits, worst balance).

Why ``scored``, and what it does not meet (measured, not assumed):

  ``bench/bench_quality.py``: 16 hosts of 2-16 nodes per trace seed, 1500
  starts each.  Misses of issue 13's goals against the best baseline per
  trace (memory CV against the baselines that place VMs), as split /
  distance / memory / vCPU misses (refusals are never missed).  Rules were
  compared on seeds 1-6 and 8-20; seed 7 is the one ``make bench`` reports
  and chose nothing.

  ================================  ==================  ===================
  rule (weights as above unless     seeds 1-6 (96)      seeds 8-20 (208)
  named)
  ================================  ==================  ===================
  ``scored`` (the default)          42/24/21/4 = 91     99/50/56/6 = 211
  FRAG_WEIGHT 0.05 / 0.1            121 / 109
  FRAG_WEIGHT 0.25 / 0.4            109 / 123 (split
                                    40, 27; memory 38,
                                    63)
  CPU_WEIGHT 0.4                    108
  two stages: fragmentation first   tau 0.05: 0/6/93/53
  (within tau of the lowest), then  = 152; 0.2: 146;
  the score                         0.4: 97; 0.8: = 91  0.4: 66/46/118/21
                                                        = 251
  two stages: memory and vCPU CV    ct 0.01: 113;
  first (within ct), then the       0.03: 101
  least fragmentation
  libxl's order (fewest vCPUs,      43/24/31/1 = 99     88/50/91/9 = 238
  most free) where the score is
  flat (within 0.005)
  hole term linear in node sizes    95                  225
  (0.3) instead of log (0.05)
  FRAG_WEIGHT of the tie-break      98 / 95 / 94
  among equally close sets 0 /
  0.5 / 1.5
  ================================  ==================  ===================

  Re-measured on 2026-12-05 (the planner and build order of 2026-12-04;
  baselines cached per trace, ``ours`` replayed, the same figures as
  ``bench_quality.py``): ``scored`` misses 118 on seeds 1-6, 289 on seeds
  8-20 and 13/4/4/0 = 21 on seed 7; the table above is older and is kept to
  compare rules.  Measured then, not kept:

  * weights per host size, chosen on seeds 1-6 and 8-20 (2 nodes 0.75/0.25,
    4 nodes 0.75/0, 8 nodes 0.4/0.15, 16 nodes 0.75/0.1 as CPU/FRAG): 378
    against 407 in sample, but 821 against 814 held out (four folds, chosen
    on one half of the seeds, scored on the other) and 24 against 21 on
    seed 7; no monotone trend with the node count (0.25/0.15/0.1/0.05: 408);
  * every node as the home of a VM that fits no node even on an empty host
    (more vCPUs or memory than a node), FRAG_WEIGHT 0.25: 365 against 407,
    749 against 814 held out, 227 against 263 on seeds 21-32, but 24
    against 21 on seed 7 and 10-13 distance misses on 4 nodes (none today);
    it stripes the VMs that gain most from locality over every node.

  Measured on 2026-12-05 (evening), not kept: a VM that no node holds now but
  whose vCPUs fit one node's cores homed on the node of its set with the most
  free memory alone, its memory filling that node first and the rest spilling
  as Xen's allocator takes it, instead of striped over the set: the split VM's
  local share rises and one bigger hole is left (seeds 1-6: split 51, distance
  0, memory 54, vCPU 27 = 132 misses against 69/22/27/0 = 118; on 2-node hosts
  only 67/0/39/16 = 122; with FRAG_WEIGHT 0.05 or 0 and CPU_WEIGHT 0.75 or 1,
  149 and 161).  It buys splits and distance with memory and vCPU balance, as
  every other rule above does.

  Seed 7 before 2026-12-04: 8/4/10/0 = 22 (the same rule, so the same figures as before).
  Since free memory below a whole 2 MiB extent no longer counts as room for
  an HVM/PVH build (placement.py; Xen takes such an extent from another
  node), ``scored`` misses 42/24/24/4 = 94 on seeds 1-6, 101/50/60/6 = 217
  on seeds 8-20 and 7/4/10/0 = 21 on seed 7; the comparison above is from
  before that fix.
  By host size (seeds 8-20, ``scored``): 2 nodes 48/50/8/2, 4 nodes
  29/0/9/3, 8 nodes 10/0/19/1, 16 nodes 12/0/20/0; mean ratio ours / best
  baseline for split, distance, memory: 1.25/1.02/0.93 on 2 nodes,
  1.03/0.95/0.97 on 4, 0.94/0.92/0.97 on 8, 0.95/0.88/0.99 on 16.  On 8 and
  16 nodes split and memory are met on average, by 1-6 %; a trace's
  verdict turns on a few VMs.  The two-stage rule with a tight tolerance
  shows that splits and distance can be met nearly everywhere (0 and 6
  misses on seeds 1-6), at up to 1.9x the memory and 2.1x the vCPU
  imbalance of the baselines (1.29x and 1.28x on average).

  Why the baselines win where they do (seed 7, replayed side by side;
  ``memory_cv_before_drain`` in the benchmark's JSON):

  * Every distance miss is on 2 nodes (all 24 + 50 on the seeds above),
    where the only multi-node set is both nodes: it follows the split
    share, weighted by memory (split VMs hold 22.1 % of the memory against
    16.8 % for ``Prio_mem_only``), plus the 24-vCPU VMs that the thread
    counting baselines keep on one node of an SMT host.  Not the set search.
  * Splits, 2 and 4 nodes (xenopsd, ``Prio_mem_only``, libxl): xenopsd
    takes nodes round robin by use count, blind to size, so its nodes stay
    less even (mean difference of free memory 39 GiB against ours 25 on 2
    nodes when over 96 GiB are free) and a VM of 1/2-3/4 node finds a hole
    more often: ours splits such VMs while a node or more is free (4n-reg,
    k=1079: a 32 GiB VM takes the one node with 107 of 84/89/107/97 GiB
    free, the 97 GiB VM after it is split).  For each split only ours has,
    the one start of ours that closed the last hole of that size, put on
    the next most level node instead (27 replays of the whole trace):
    splits -0.4 (2n-reg-smt, 10 starts), -3.2 (4n-reg, 10), -7.7
    (8n-reg-smt, 7) on average, fewer in 20 of 27 but memory CV worse in
    22 of 27; one start changes up to 15 later splits.  The trade-off is
    per decision, not a misweighting.
  * Memory, SMT hosts (libxl): libxl counts threads, so its 24-vCPU VMs go
    whole to the emptier node of a 32-thread node; ``best_effort`` counts
    cores (the issue asks it), so ours stripes them over two nodes.  libxl
    on the same hosts without SMT: 0.163 on 2 nodes, 0.180 on 8, 0.179 on
    16, against ours 0.164, 0.174-0.180, 0.168.
  * Memory, 8 and 16 nodes: the final drain.  After the last start the
    trace only stops VMs; the CV of what is left grows to 0.45-0.75 over
    the last 113 of 2250 states on 16 nodes, a fifth of the figure.  Up to
    the last start ours is 0.1375 against xenopsd's 0.1526 (16n-reg-nosmt,
    a miss over the whole trace: xenopsd's multi-node VMs have no affinity,
    are striped over all nodes and leave memory spread as the host empties)
    and 0.1685 against libxl's 0.1690 (8n-irr-nosmt, also a miss).  Before
    the drain ours misses 7 of 16 traces instead of 10.

  The goals conflict most on 2 nodes.  There the memory imbalance D between
  the two nodes *is* the head room of the bigger hole ((free + D) / 2), so
  each split avoided costs memory balance one for one.  No baseline meets
  both there either: over the 76 2-node traces of seeds 1-6 and 8-20,
  xenopsd's memory CV is 1.34x the best placing baseline's on average and
  libxl's split share 1.14x the best (libxl meets both on 24, neither
  xenopsd policy on any); ``scored`` sits at 1.23-1.25x split, 0.93-0.96x
  memory.  Earlier, also worse
  overall: best fit when the host's free memory is under 0.3-0.5 node;
  keeping a hole of 0.25-0.75 node; best fit for VMs under 1/32-1/8 node;
  fragmentation weighted by fill; homing a VM that fits no node's free
  memory on the node holding most of it (distance met, memory CV missed on
  25-42 of 48 traces: it leaves all the free memory on one node).  (These
  figures are from a replay that landed the whole build, overhead included,
  on each rule's choice: about one in seven of xenopsd's "splits" was a few
  MiB of overhead spilling from a full node.  Since 2026-12-04 the replay
  builds in xenopsd's order, the overhead round every node first, and the
  planner counts only its nodes' share of it; there xenopsd splits fewer VMs
  on 2 nodes (36-38 against ours' 50), and a sweep of FRAG_WEIGHT over
  0.15-0.5 on seeds 1-6 still finds 0.15 the fewest misses in all.)

  Seed 7, per missed goal, the best baseline and ours / it: split, xenopsd
  (``Prio_mem_only`` on SMT) on 2 nodes 1.04-1.09 (47 VMs against 43-45),
  xenopsd or libxl on 4 nodes 1.04-1.16 (59-66 against 57), 8n-reg-smt
  1.05 (91 against 87); distance, the same on 2 nodes, 1.02-1.04; memory,
  libxl, 1.00-1.04 (xenopsd on 16n-reg-nosmt, 1.003).  Rules tried in this light, seeds 1-6
  / seed 7, misses split/distance/memory/vCPU (``scored``: 42/24/21/4 = 91
  / 8/4/10/0 = 22):

  * memory no less even than on the node with most free memory, then best
    fit: with nodes of one size that node *is* the lowest memory CV, so the
    rule is worst fit: 96/24/2/79 = 201 / 16/4/0/16 = 36.  (xenopsd's
    memory-only rule does not take that node: it goes round robin among the
    nodes that fit, by use count.)
  * memory (or memory + 0.75 vCPU) CV no worse than libxl's node (fewest
    vCPUs, then most free), then best fit: 45/24/60/1 = 130 (44/24/60/1 =
    129) / 6/4/14/0 = 24; then ``scored`` within 0.005 of it: 60/24/19/2 =
    105 / 9/4/10/0 = 23.

  Whether the goals truly conflict, checked in hindsight
  (``bench/quality/hindsight.py``: ``scored``, except that each choice
  among nodes that fit is a rollout of the next 100 events of the trace,
  known in advance, scored weight x splits + mean memory CV (+ 0.75 x mean
  vCPU CV)).  On seed 7 it meets every goal at once where ours misses:
  2 nodes (weight 0.1, vCPU 0.75): 26 splits, distance 10.889, memory
  0.1513, vCPU 0.121 (needed on 2n-reg-smt: 43, 10.927, 0.1588, 0.1375;
  the trace and these figures are the same without SMT); 4n-reg-nosmt
  (0.03): 40, 10.680, 0.1581, 0.181 (57, 11.17, 0.192, 0.207); 8n-irr-smt
  (0.01): 71, 11.515, 0.1427, 0.197 (94, 13.13, 0.173, 0.263).  So the
  goals do not conflict as such; what an online rule lacks is which VMs
  stop soon.  On 2n-reg-nosmt hindsight (weight 0.01) changes 250 of 1318
  choices, 195 of them for VMs of 1-4 GiB, and on nodes within 16 GiB of
  each other both ways (66 to the fuller node, 52 to the emptier one): no
  state feature picks them out, and the trace's lifetimes are exponential,
  so a VM's age says nothing of when it stops.

  Measured on 2026-12-06, not kept: making room with the page mover, which
  the baselines lack (``bench/quality/make_room.py``): where the rule would
  split a VM that fits one node, move whole VMs homed on the node that needs
  the fewest pages moved to the other nodes with most free memory, at most
  1/16 or 1/8 of a node per start, and build the VM there.  With
  FRAG_WEIGHT 0 (balance first, the moves keep the holes), seeds 1-6:
  16/6/29/15 = 66 and 2/0/36/20 = 58 misses against ``scored``'s 69/22/27/0
  = 118, moving 25 and 39 VMs (158 and 362 GiB) per 1500 starts on average;
  seed 7 at 1/16: 0/0/6/2 = 8 against 21 (1/16 with FRAG_WEIGHT 0.15,
  seeds 1-6: 5/4/46/8 = 63).  Splits and distance are met
  nearly everywhere; memory and vCPU balance are missed more often, since a
  hole made for one VM is imbalance until it is filled.  It is also a cost
  no score shows: the start waits for the moves (8 GiB is some 6 s at the
  mover's modelled 1.4 GiB/s) and other guests' pages are moved for it.

  Measured on 2026-12-06 (night), ``bench/quality/variants.py``, misses
  split/distance/memory/vCPU; ``scored`` 63/22/27/3 = 115 on seeds 1-6,
  146/50/53/4 = 253 on seeds 8-20, 14/4/4/0 = 22 on seed 7.  Worse on seeds
  1-6, so not run further: xenopsd's use count as the tie-break among nodes
  within 0.002/0.005/0.01/0.02/0.05 of the lowest score (125/132/136/126/
  160), a decayed use-count term (122-135), best fit for VMs under 1/32,
  1/16, 1/8 of a node (200/212/229: vCPUs pile up), and the tightest fit
  within 0.01 or 0.02 of the lowest score for VMs under 1/16 or 1/8 (126,
  149).  Better everywhere, not kept: a split-risk term, r x the share of
  the sizes of the VMs started so far (those that fit a node) bigger than
  the biggest free memory on one node after the choice, with FRAG_WEIGHT
  times m: r 0.5, m 0.5: 53/24/27/8 = 112, 112/48/56/6 = 222, 6/4/7/0 = 17;
  over the last 100 starts only: 51/24/21/5 = 101, 121/48/50/9 = 228,
  12/4/7/0 = 23; the last 300: 107, 229, 20; seeds 1-6 over r 0.2-1, m 0-1: 102-121 (1, 0.5: 102; then 235 and 18);
  every r, m run on seeds 8-20, 222-246.  It buys splits with memory and
  vCPU balance, as the rules above, but fewer misses in all.  The engine
  keeps no history of started sizes (a start's plugin process sees the
  host's state only), so it needs a new input; over the sizes of the VMs
  running now instead, 113-127 on seeds 1-6.
"""
import itertools
import math
import operator
from typing import List, Sequence, Tuple

from xapi_numa.core.start_sizes import NO_STARTS, StartSizes

SINGLE_NODE_RULES = ("scored", "hole", "spare", "balanced", "best", "worst")
SINGLE_NODE_RULE = "scored"
# Weights of ``scored`` against the memory CV, chosen on seeds 1-6 of the
# quality benchmark (seed 7, the one it reports, was not used to choose them).
CPU_WEIGHT = 0.75
FRAG_WEIGHT = 0.15
# ``scored``'s split risk: RISK_WEIGHT x the share of the starts (the host's history and this VM)
# bigger than the biggest hole after the choice; its fragmentation term is SCORED_FRAG x FRAG_WEIGHT
# (FRAG_WEIGHT alone weighs the tie-break among equally close node sets).  Chosen on seeds 1-6.
RISK_WEIGHT = 0.5
SCORED_FRAG = 0.5
# Weight of the biggest hole left, in node sizes, in the ``hole`` rule (the
# previous default, kept so that the benchmark shows the difference).
HOLE_WEIGHT = 0.1


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
    return sum(values), sum(map(operator.mul, values, values))


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
    return list(map(operator.sub, map(max, sizes[:len(avail)], avail), avail))


def _scored(fits: List[int], avail: Sequence[int], vcpus_on: Sequence[int], cores: Sequence[int],
            vcpus: int, need: int, sizes: Sequence[int], hole_rule: bool = False,
            starts: StartSizes = NO_STARTS, this: int = 0) -> int:
    n = len(avail)
    used = used_memory(avail, sizes)
    load = list(map(operator.truediv, vcpus_on[:n], cores[:n]))
    mem1, mem2 = _moments(used)
    cpu1, cpu2 = _moments(load)
    scale = float(max(max(sizes), max(avail), 1))
    free_after = sum(avail) - need
    # the biggest hole elsewhere: the largest free memory (on the lowest such node), or the
    # second largest when the candidate is that node
    first = max(range(n), key=avail.__getitem__)
    second = max(itertools.chain(avail[:first], avail[first + 1:])) if n > 1 else 0
    # _cv_after's arithmetic, operation for operation, inline (a start scores every node that
    # fits): the memory's sum after the VM is the same for every candidate
    mem_mean, need2 = (mem1 + need) / n, need * need
    # the split risk's sizes: the history and this VM (``this``: 0 when it fits no node).  With no
    # history it is 0: another node that fits this VM is left, so no hole smaller than it is the biggest
    total = starts.total + (this > 0)
    frag_weight = SCORED_FRAG * FRAG_WEIGHT
    best_score, best = None, fits[0]
    for i in fits:
        hole = max(avail[i] - need, second if i == first else avail[first])
        memory_cv = 0.0 if mem_mean <= 0 else \
            math.sqrt(max((mem2 + (2 * used[i] * need + need2)) / n - mem_mean * mem_mean, 0.0)) / mem_mean
        add = vcpus / cores[i]
        cpu_mean = (cpu1 + add) / n
        cpu_cv = 0.0 if cpu_mean <= 0 else \
            math.sqrt(max((cpu2 + (2 * load[i] * add + add * add)) / n - cpu_mean * cpu_mean, 0.0)) / cpu_mean
        if hole_rule:
            score = memory_cv + cpu_cv - HOLE_WEIGHT * hole / scale
        else:
            risk = RISK_WEIGHT * ((starts.above(hole) + (this > hole)) / total) if total else 0.0
            score = memory_cv + CPU_WEIGHT * cpu_cv + frag_weight * (
                math.log(free_after / hole) if free_after > 0 and hole > 0 else 0.0) + risk
        if best_score is None or score < best_score or (score == best_score and i < best):  # (score, node) lowest
            best_score, best = score, i
    return best


def choose_node(rule: str, fits: List[int], avail: Sequence[int], vcpus_on: Sequence[int],
                cores: Sequence[int], vcpus: int, need: int = 0, sizes: Sequence[int] = (),
                starts: StartSizes = NO_STARTS, this: int = 0) -> int:
    """One of ``fits`` (at least two nodes that hold the VM alone) by ``rule``.

    ``avail``: bytes available per node; ``vcpus_on``: vCPUs homed per node;
    ``cores``: physical cores per node; ``need``: bytes the build takes;
    ``sizes``: each node's memory size (bytes; 0 = unknown); ``starts``: the sizes
    of the VMs started on the host that fit a node; ``this``: the VM's memory if
    it fits a node (counted as one more start), else 0.
    """
    cores = [c or 1 for c in cores]  # a node of memory only is never a candidate; its load is still a value

    def load(i: int) -> float:
        return vcpus_on[i] / cores[i]

    if rule in ("scored", "hole"):
        return _scored(fits, avail, vcpus_on, cores, vcpus, need, sizes or [0] * len(avail), rule == "hole",
                       starts, this)
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
