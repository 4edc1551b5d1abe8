"""A hypervisor whose claims follow Xen's ``domain_set_outstanding_pages`` (Xen 4.17,
xen/common/page_alloc.c, and the NUMA-aware claims XenServer's Xen adds on it): one
claim per domain, host-wide or on one node; its argument is the domain's *total*
(Xen stakes ``pages - tot_pages``); a second claim while one is outstanding is EINVAL;
a claim of 0 cancels whatever claim the domain has; allocations use the claim up.
Only what the executor's claim paths call is here."""
import errno
import time

from xapi_numa.core import reservation
from xapi_numa.core.host import DomainInfo, NodeMemory
from xapi_numa.errors import HypervisorError
from xapi_numa.ports.hypervisor import Capabilities
from xapi_numa.state.ledger import Ledger

PAGE = 4096


class Clock:
    """The ledger's clock, moved by hand (``clock.now += 3600``): leases lapse on cue."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class XenClaims:
    def __init__(self, free_pages, node_claims=True):
        self.free = list(free_pages)          # pages free per node
        self.node_claims = node_claims        # False: the hypervisor answers ENOSYS to a node claim
        self.dom = {}                         # domid -> dict(tot, max, claim, node, uuid)
        self.calls = []

    def add(self, domid, uuid, tot=0, max_pages=1 << 30):
        self.dom[domid] = {"tot": tot, "max": max_pages, "claim": 0, "node": None, "uuid": uuid}

    def populate(self, domid, node, pages):
        d = self.dom[domid]
        self.free[node] -= pages
        d["tot"] += pages
        d["claim"] = max(0, d["claim"] - pages)
        if not d["claim"]:
            d["node"] = None

    # --- the port, as far as claims go
    def clock(self):
        return time.monotonic()

    def claim(self, domid, pages, node=None):
        self.calls.append((domid, pages, node))
        if node is not None and not self.node_claims:
            raise HypervisorError(errno.ENOSYS, "claiming on node {}".format(node))
        d = self.dom.get(domid)
        if d is None:
            raise HypervisorError(errno.ESRCH, "domain {}".format(domid))
        if pages == 0:
            d["claim"], d["node"] = 0, None
            return
        if d["claim"]:
            raise HypervisorError(errno.EINVAL, "one claim per domain")
        if pages <= d["tot"] or pages > d["max"]:
            raise HypervisorError(errno.EINVAL, "claim must exceed tot_pages and not exceed max_pages")
        want = pages - d["tot"]
        others = sum(o["claim"] for k, o in self.dom.items() if k != domid)
        room = (self.free[node] if node is not None else sum(self.free)) - others
        if want > room:
            raise HypervisorError(errno.ENOMEM, "claim of {} pages".format(want))
        d["claim"], d["node"] = want, node

    def claims_outstanding(self):
        return sum(d["claim"] for d in self.dom.values()) * PAGE

    def node_memory(self):
        return [NodeMemory(n, 1 << 40, f * PAGE, 0) for n, f in enumerate(self.free)]

    def domain(self, domid, named=True):
        d = self.dom.get(domid)
        return None if d is None else self.info(domid)

    def info(self, domid, paused=True):
        d = self.dom[domid]
        return DomainInfo(domid, "d{}".format(domid), d["uuid"], 1, d["tot"] * PAGE, d["max"] * PAGE, paused,
                          "hvm", d["claim"] * PAGE)

    def capabilities(self):
        return Capabilities("credit2", True, {"node_claims": "native"})


VM = "11111111-2222-4333-8444-555555555555"
DOMID = 5


def reserved_build(tmp_path, reserved, free=(100000, 100000), begun=True, node_claims=True, **domain):
    """Domain 5 of ``VM`` being built on a host with ``free`` pages per node, and the VM's
    reservation of ``reserved`` pages per node: (hv, ledger).  ``begun``: one page has
    landed on node 1 (the builder began: a claim of ours may be made); ``domain``: as
    :meth:`XenClaims.add` takes it."""
    hv = XenClaims(list(free), node_claims)
    hv.add(DOMID, VM, **domain)
    if begun:
        hv.populate(DOMID, 1, 1)
    ledger = Ledger(str(tmp_path / "l.db"))
    ledger.reserve(VM, {n: p * PAGE for n, p in reserved.items()}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    return hv, ledger


def reconcile(hv, ledger, landed, paused=True):
    """Reconcile's plan for the VM's reservation, its domain's pages per node ``landed``."""
    return reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(DOMID, paused)}, {DOMID: landed}, True)


class Killed(BaseException):
    """The process dies (SIGKILL: nothing after this point runs)."""


class DiesAfterClaiming:
    """The hypervisor as a process sees it that is killed right after its claim call."""

    def __init__(self, hv):
        self.hv = hv

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def claim(self, domid, pages, node=None):
        self.hv.claim(domid, pages, node)
        if pages:
            raise Killed()
