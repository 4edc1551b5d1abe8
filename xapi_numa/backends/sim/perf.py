"""The simulator's performance model: how much work a vCPU gets done where it runs.

A vCPU that runs for one tick on a pCPU of node ``n`` gets
``tick / cost(n)`` seconds of work done, where one unit of work is what one
second of CPU does with all of its memory local, and::

    cost(n) = 1 + mem_bound * REMOTE_PENALTY * sum_j share_j * (D[n][j] / 10 - 1)

* ``share_j`` - the share of the VM's memory on node ``j`` (pages per node as
  the allocator and page moves left them);
* ``D[n][j]`` - the SLIT distance (10 local, 20-ish one hop, 30-ish two);
* ``mem_bound`` - how memory-bound the workload is, 0 (pure CPU: placement
  does not matter) .. 1 (every cycle waits on memory), from the VM's load
  profile (``mem=``, default 0.5);
* ``REMOTE_PENALTY`` - how much of the extra distance shows up as time
  (1.0: at distance 20 a fully memory-bound vCPU with all its memory remote
  runs at half speed).  A round figure, not calibrated on hardware: it sets
  the size of every locality effect the simulator reports.

So a CPU-bound VM does as much work anywhere, and a memory-bound one with
its memory on the far side of the host does half or less.  The model is
linear in the shares and deterministic.  What it leaves out: caches (a VM
whose working set fits in cache does not care where its memory is),
memory-bandwidth contention when many vCPUs hit one node, interconnect
load, SMT siblings, and which pages are hot (every page counts the same).

Per vCPU the model counts CPU time (ticks run); per domain the work done
and the *remote share* of it: for every tick run on node ``n``, the share of
the VM's memory not on ``n``, so ``remote_ticks / cpu_ticks`` is the share of
its memory accesses that went to another node, weighted by run time.
"""

from typing import List, Sequence, Tuple

TICK_SECONDS = 0.01
REMOTE_PENALTY = 1.0
LOCAL_DISTANCE = 10.0


def node_costs(distances: Sequence[Sequence[int]], node_pages: Sequence[int], mem_bound: float,
               penalty: float = REMOTE_PENALTY) -> List[Tuple[float, float]]:
    """(cost of a unit of work, remote share of memory) for a vCPU on each node."""
    total = sum(node_pages)
    if total <= 0:
        return [(1.0, 0.0)] * len(distances)
    shares = [p / total for p in node_pages]
    out = []
    for n, row in enumerate(distances):
        extra = sum(s * (row[j] / LOCAL_DISTANCE - 1.0) for j, s in enumerate(shares) if s)
        out.append((1.0 + mem_bound * penalty * extra, 1.0 - shares[n]))
    return out


class CostCache:
    """A domain's :func:`node_costs`, recomputed only when its memory moves.

    Not part of the saved state: it is derived from it.
    """

    __slots__ = ("pages", "mem", "table")

    def __init__(self) -> None:
        self.pages: List[int] = []
        self.mem = -1
        self.table: List[Tuple[float, float]] = []

    def get(self, distances: Sequence[Sequence[int]], node_pages: List[int],
            mem_milli: int) -> List[Tuple[float, float]]:
        # Called for every domain that ran in a tick: a list compare is the cheap check.
        if node_pages != self.pages or mem_milli != self.mem:
            self.pages, self.mem = list(node_pages), mem_milli
            self.table = node_costs(distances, node_pages, mem_milli / 1000.0)
        return self.table
