"""World -> snapshot: read a host through the Hypervisor port into values.

Reads tolerate domains that go away mid-read (they are left out); nothing here
decides anything.
"""
from typing import Dict, Iterable, Optional, Tuple

from xapi_numa.errors import NumaError
from xapi_numa.core.host import DomainInfo, VcpuInfo, find_domain
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.ports.hypervisor import Hypervisor


def take(hv: Hypervisor, now: Optional[float] = None, with_pages: bool = False,
         pages_of: Optional[Iterable[int]] = None) -> HostSnapshot:
    """The host now.  ``with_pages``: pages per node of every guest; ``pages_of``:
    of these domids only."""
    now = hv.clock() if now is None else now
    domains = tuple(hv.domains())
    wanted = None if pages_of is None else set(pages_of)
    vcpus: Dict[int, Tuple[VcpuInfo, ...]] = {}
    pages: Dict[int, Dict[int, int]] = {}
    for d in domains:
        try:
            vcpus[d.domid] = tuple(hv.vcpus(d.domid))
            if d.domid != 0 and (with_pages or (wanted is not None and d.domid in wanted)):
                pages[d.domid] = dict(hv.node_pages(d.domid))
        except NumaError:
            continue  # the domain went away during the read
    return HostSnapshot(hv.topology(), now, tuple(d for d in domains if d.domid in vcpus), vcpus, pages,
                        hv.capabilities().scheduler, hv.cpupools())


def domain_by_name_or_id(hv: Hypervisor, ref: str) -> DomainInfo:
    """Find a domain by domid, name or UUID (what users type)."""
    return find_domain(hv.domains(), ref)
