"""Review 3: the 'banned, yet moved' SIGHUP (ops/backend_alignment.py plan) fires on any
SetIrqAffinity of a banned IRQ, also when nobody moved it: the guest's home changed
(a rebalance, a settle), so its target did.  docs/dom0-backends.md: the daemon signals irqbalance 'at
each look that finds an IRQ on the list moved off its dom0 vCPUs (it moves it back:
irqbalance has not taken the ban)'.  Each SIGHUP makes irqbalance rescan and re-place
every dom0 IRQ."""
import signal

from test_backend_affinity import N0, dom0_tree, host_with_guest_3

from xapi_numa.backends.dom0 import Dom0Proc
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database


def test_a_rehomed_guest_whose_irq_irqbalance_left_alone_sends_no_sighup(tmp_path):
    hv, g = host_with_guest_3(tmp_path), 3
    fake = dom0_tree(tmp_path)
    fake.irq(80, "vif{}.0-q0-tx".format(g), allowed="0-1")
    hups = []
    dom0 = Dom0Proc(fake.root, set_affinity=lambda tid, cpus: None, run_dir=str(tmp_path / "run"),
                    clock_ticks=100, signaller=lambda pid, sig: hups.append(sig))
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert fake.read("irq/80/smp_affinity_list") == "1\n" and 80 in dom0.banned()
    for _ in range(4):  # the reminder 25 s after the change, then quiet
        hv.run(10.5)
        rt.cycle()
    assert hups == [signal.SIGHUP] * 2, hups
    # the guest is re-homed on node 0; irqbalance never touched IRQ 80
    hv.set_vcpu_affinity(g, 0, soft=N0)
    hv.run(10.5)
    rt.cycle()
    assert fake.read("irq/80/smp_affinity_list") == "0\n"
    assert hups == [signal.SIGHUP] * 2, "a re-home made irqbalance rescan every IRQ: {}".format(hups)
