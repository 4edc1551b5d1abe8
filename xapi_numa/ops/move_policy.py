"""What a VM's NUMA policy allows a move of its memory made by hand (the plugin's
``move_memory``, ``xapi-numa move-memory``): a strict VM's memory stays on its nodes
(:func:`xapi_numa.core.policy.strict_forbids_move`); any other policy allows any node."""
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.policy import Policy, strict_forbids_move
from xapi_numa.errors import NotMovable
from xapi_numa.ports.hypervisor import Hypervisor


def refuse_a_strict_move(hv: Hypervisor, dom: DomainInfo, policy: Policy, to: int) -> None:
    """Raise NotMovable, before anything is claimed or moved, if ``policy`` keeps the VM's
    memory off node ``to``."""
    hard = frozenset().union(*(v.hard for v in hv.vcpus(dom.domid)))
    why = strict_forbids_move(policy, to, hv.topology().cpus_near([to]), hard)
    if why is not None:
        raise NotMovable(dom.uuid, why, dom.name)
