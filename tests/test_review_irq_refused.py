"""Review: an IRQ whose smp_affinity_list write is refused (EIO/EINVAL from the kernel)
is re-planned at every look (10 s): each attempt bans it, SIGHUPs irqbalance, fails,
unbans it and SIGHUPs irqbalance again.  A SIGHUP makes irqbalance free and rebuild its
whole IRQ database and re-place every IRQ (force_rebalance_irq), so one IRQ that refuses
keeps irqbalance rescanning, and re-spreading dom0's other IRQs, for as long as the guest
runs.  Nothing backs off after a dom0 refusal (the executor's back-off is per domain, for
the hypervisor's refusals only)."""
import errno
import signal

from test_backend_affinity import dom0_tree, host_with_guest_3

from xapi_numa.backends.dom0 import Dom0Proc
from xapi_numa.ops.backend_alignment import LOOK_EVERY
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database


class RefusingDom0(Dom0Proc):
    def set_irq(self, irq, name, cpus):
        if not any(i == irq and n == name for i, n, _ in self._interrupts()):
            return False
        raise OSError(errno.EIO, "Input/output error")   # what the write(2) to smp_affinity_list answered


def test_a_refused_irq_does_not_keep_irqbalance_rescanning(tmp_path):
    hv = host_with_guest_3(tmp_path)
    fake = dom0_tree(tmp_path)
    fake.irq(80, "vif3.0-q0-tx", allowed="0-1")
    hups = []
    dom0 = RefusingDom0(fake.root, set_affinity=lambda tid, cpus: None, run_dir=str(tmp_path / "run"),
                        clock_ticks=100, signaller=lambda pid, sig: hups.append((pid, sig)))
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    first = len(hups)
    for _ in range(6):                      # a minute of the guest running
        hv.run(LOOK_EVERY + 0.5)
        rt.cycle()
    assert all(sig == signal.SIGHUP for _, sig in hups)
    assert len(hups) == first, "irqbalance was sent {} SIGHUPs in a minute for one IRQ that refuses".format(
        len(hups))
