"""After a page move: a plain guest's node affinity and soft affinity follow its memory.

The one rule is :mod:`xapi_numa.core.affinity_fixup`; this applies it through the
executor once a move has released pages (a vNUMA guest's vnode has its own
step, :mod:`xapi_numa.ops.vnode_move`).  A move by hand whose affinity follows is a
home move: logged as one (:func:`hold_down_hand_move`), it holds the VM down.
"""
from typing import FrozenSet, Optional

from xapi_numa.core import affinity_fixup, locality
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.rebalance import Settings
from xapi_numa.errors import NumaError
from xapi_numa.ops.executor import DONE as APPLIED, Executor
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HAND, HomeMove, HomeMoves


def follow_memory(hv: Hypervisor, d: DomainInfo, db: Optional[Database] = None,
                  guest_cpus: Optional[FrozenSet[int]] = None) -> dict:
    """Point node affinity and soft affinity at the nodes that now hold the memory (the soft
    affinity inside ``guest_cpus``, the host's guest mask, as the fix-up writes it).
    Hard affinity is the admin's: it is reported, never changed."""
    topo = hv.topology()
    vcpus = hv.vcpus(d.domid)
    actions = affinity_fixup.follow(d, vcpus, topo, hv.node_pages(d.domid), "its memory was moved",
                                    usable=guest_cpus)
    if not actions:
        return {}
    outcomes = Executor(hv, db).apply(actions)
    nodes = sorted(actions[0].nodes)
    cpus = topo.cpus_near(nodes)
    return {"nodes": nodes, "soft": "set" if all(o.status == APPLIED for o in outcomes) else "partly refused",
            "hard_excludes_memory": [v.vcpu for v in vcpus if not v.hard & cpus]}


def home_before(hv: Hypervisor, d: DomainInfo) -> int:
    """The VM's single home node before a move by hand, or -1 (several, or not readable)."""
    try:
        homes = locality.home_nodes(hv.vcpus(d.domid), hv.topology())
    except NumaError:
        return -1
    return next(iter(homes)) if len(homes) == 1 else -1


def hold_down_hand_move(hv: Hypervisor, db: Database, d: DomainInfo, home: int, to: int,
                        vnode: Optional[int]) -> None:
    """A move by hand, the VM's affinity following its memory, logged as a home move: the
    rebalancer's hold-down reads that log, so it does not move the VM back in its next
    period (as after a move of its own)."""
    what = "its memory moved by hand to node {}".format(to) + ("" if vnode is None else " (vnode {})".format(vnode))
    HomeMoves(db, hv.boot_id()).record(HomeMove(d.uuid, hv.clock(), home, to, HAND, what), Settings().hold_down)
