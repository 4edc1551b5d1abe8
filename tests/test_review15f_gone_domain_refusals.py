"""xapi-numad's executor remembered, per domid, the back-off after a refused write and that
the refusal was logged, until a write to that domid succeeded: a domain refused and then
destroyed stayed remembered for the daemon's life (one entry per such domain, months of
them), and once Xen's domids wrapped (at 32752) a new domain given that domid had its first
writes deferred for the old one's back-off and its own refusals never logged."""
import logging

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import SetAffinity
from xapi_numa.core.topology import Topology
from xapi_numa.ops import runtime
from xapi_numa.ops.executor import DEFERRED, REFUSED
from xapi_numa.state.db import Database

NO_CPU = frozenset({99})  # a CPU the host does not have: Xen refuses it (EINVAL)


def _setup(tmp_path):
    path = str(tmp_path / "host.json")
    hv = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 1, dom0_vcpus=1,
                            dom0_memory=64 << 20)
    logger = logging.getLogger("test-review15f-refusals")
    return hv, runtime.Runtime(hv, Database(path + ".ledger.db"), logger=logger)


def _refused_write(rt, hv, domid):
    uuid = hv.domain(domid).uuid
    return rt.executor.apply([SetAffinity(domid, uuid, 0, hard=NO_CPU, reason="test")])[0]


def test_a_domain_given_a_gone_ones_domid_is_not_held_back_or_silenced_by_its_refusals(tmp_path, caplog):
    hv, rt = _setup(tmp_path)
    old = hv.create("old", 1, 32 << 20, load="idle")
    assert _refused_write(rt, hv, old).status == REFUSED
    hv.destroy(old)
    rt.cycle()  # the daemon sees it gone
    with hv.store.transaction() as host:
        host.next_domid = old  # Xen's domids wrapped: the next domain gets the old one's domid
    new = hv.create("new", 1, 32 << 20, load="idle")
    assert new == old
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test-review15f-refusals"):
        outcome = _refused_write(rt, hv, new)
    assert outcome.status != DEFERRED, "a new domain's write waited out a gone domain's back-off"
    assert outcome.status == REFUSED
    assert any("hypervisor refused" in r.getMessage() for r in caplog.records), \
        "the new domain's refusal was not logged: the gone domain's was"


def test_refusals_of_domains_gone_are_not_kept_for_the_daemons_life(tmp_path):
    hv, rt = _setup(tmp_path)
    for i in range(20):
        domid = hv.create("vm{}".format(i), 1, 32 << 20, load="idle")
        _refused_write(rt, hv, domid)
        hv.destroy(domid)
        rt.cycle()
    assert not rt.executor._backoff and not rt.executor._reported


def test_a_refused_irq_number_reused_by_another_guest_is_logged_again(tmp_path, caplog):
    """dom0's kernel reuses IRQ numbers: a refusal of the gone guest's IRQ silenced the new one's."""
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_backend_affinity import N1, dom0_tree, host_with_guest_3
    from test_review_irq_refused import RefusingDom0
    from xapi_numa.ops.backend_alignment import LOOK_EVERY

    hv = host_with_guest_3(tmp_path)
    fake = dom0_tree(tmp_path)
    fake.irq(80, "vif3.0-q0-tx", allowed="0-1")
    dom0 = RefusingDom0(fake.root, set_affinity=lambda tid, cpus: None, run_dir=str(tmp_path / "run"),
                        clock_ticks=100, signaller=lambda pid, sig: None)
    rt = runtime.Runtime(hv, Database(str(tmp_path / "l.db")), runtime.Settings(rebalancing=False), dom0=dom0)
    with caplog.at_level(logging.WARNING, logger="xapi-numad"):
        rt.cycle()
    assert any("dom0 refused" in r.getMessage() for r in caplog.records)
    hv.destroy(3)
    fake.irqs = []
    fake.irq(81, "unrelated")  # (rewrites /proc/interrupts without IRQ 80)
    hv.run(LOOK_EVERY + 0.5)
    rt.cycle()
    assert hv.create("h", 1, 256 << 20, soft=N1, dtype="pvh") == 4
    fake.irq(80, "vif4.0-q0-tx", allowed="0-1")  # the kernel gives the new guest's queue the same IRQ
    caplog.clear()
    hv.run(LOOK_EVERY + 0.5)
    with caplog.at_level(logging.WARNING, logger="xapi-numad"):
        rt.cycle()
    assert any("dom0 refused" in r.getMessage() and "vif4" in str(getattr(r, "fields", "")) for r in caplog.records), \
        "the new guest's refused IRQ was not logged: the gone guest's refusal of the same number was"
