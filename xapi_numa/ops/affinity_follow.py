"""After a page move: a plain guest's node affinity and soft affinity follow its memory.

The one rule is :mod:`xapi_numa.core.affinity_fixup`; this applies it through the
executor once a move has released pages (a vNUMA guest's vnode has its own
step, :mod:`xapi_numa.ops.vnode_move`).
"""
from typing import FrozenSet, Optional

from xapi_numa.core import affinity_fixup
from xapi_numa.core.host import DomainInfo
from xapi_numa.ops.executor import DONE as APPLIED, Executor
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database


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
