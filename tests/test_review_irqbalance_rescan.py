"""Review: the daemon tells irqbalance about a newly banned IRQ with one SIGHUP and never
again, but irqbalance ignores SIGHUP while cycle_count == 0, i.e. during the first
iteration after it starts and after every rescan (irqbalance 1.0.7, CentOS 7's and so
XenServer 8.4's / XCP-ng 8.3's, irqbalance.c:

    static void force_rescan(int signum) { if (cycle_count) need_rescan = 1; }

and upstream's GLib version keeps the same test).  irqbalance 1.0.7 also rescans by itself
when a new IRQ shows up in /proc/interrupts, which is exactly when a guest's netback IRQs
appear.  So: the guest's vif IRQ appears, irqbalance sees it, rescans (running the policy
script before our list has it: the IRQ is irqbalance's) and sets cycle_count = 0 for the
next ~10 s; xapi-numad aligns the IRQ within its 10 s look, banning it and sending the one
SIGHUP, which lands in that window and is dropped.  irqbalance keeps balancing the IRQ
(it writes its own smp_affinity at the end of that rescan iteration), the daemon writes it
back at each look, and the ban list never changes again, so no further SIGHUP is sent.

The model below is irqbalance 1.0.7's main loop as far as bans go; the daemon side is the
real Dom0Proc and executor, and the policy script is packaging/irqbalance-policy."""
import os
import signal
import subprocess

from test_backend_affinity import REPO, dom0_tree, host_with_guest_3, sim_host

from xapi_numa.backends.dom0 import Dom0Proc
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database


class IrqbalanceModel:
    """irqbalance 1.0.7 (irqbalance.c main loop, classify.c rebuild_irq_db/add_new_irq)."""

    def __init__(self, fake, banned_file):
        self.fake, self.banned_file = fake, banned_file
        self.cycle_count, self.need_rescan = 0, False
        self.known, self.banned = set(), set()
        self.rebuild()
        self.cycle_count = 1                   # it has been running a while

    def policy_bans(self, irq):
        out = subprocess.run(["sh", os.path.join(REPO, "packaging", "irqbalance-policy"), "/sys", str(irq)],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True,
                             env=dict(os.environ, XAPI_NUMA_BANNED_IRQS=self.banned_file)).stdout
        return "ban=true" in out

    def irqs_in_proc(self):
        return {int(line.split(":")[0]) for line in self.fake.read("interrupts").splitlines()[1:]
                if line.split(":")[0].strip().isdigit()}

    def rebuild(self):                         # rebuild_irq_db: the policy script for every IRQ
        self.known = self.irqs_in_proc()
        self.banned = {irq for irq in self.known if self.policy_bans(irq)}

    def sighup(self):                          # force_rescan
        if self.cycle_count:
            self.need_rescan = True

    def tick(self):                            # one 10 s iteration of the main loop
        if self.irqs_in_proc() - self.known:   # parse_proc_interrupts: an IRQ it has not seen
            self.need_rescan = True
        if self.need_rescan:
            self.need_rescan, self.cycle_count = False, 0
            self.rebuild()
            yield "rescanned"                  # ... then it sleeps SLEEP_INTERVAL (10 s) inside the rescan
        self.cycle_count += 1                  # end of the iteration


def test_a_ban_made_right_after_an_irqbalance_rescan_still_reaches_irqbalance(tmp_path):
    hv = host_with_guest_3(tmp_path)
    fake = dom0_tree(tmp_path)
    fake.irq(9, "acpi", allowed="0-1")
    run_dir = str(tmp_path / "run")
    model = IrqbalanceModel(fake, os.path.join(run_dir, "irqbalance-banned-irqs"))
    dom0 = Dom0Proc(fake.root, set_affinity=lambda tid, cpus: None, run_dir=run_dir, clock_ticks=100,
                    signaller=lambda pid, sig: model.sighup() if sig == signal.SIGHUP else None)
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()

    # the guest's frontend connects: its netback IRQ appears
    fake.irq(80, "vif3.0-q0-tx", allowed="0-1")
    # irqbalance's next iteration sees it first and rescans (80 is not on our list yet) ...
    iteration = model.tick()
    assert next(iteration) == "rescanned" and 80 not in model.banned
    # ... and while it sleeps inside that rescan, xapi-numad's look aligns it: banned, one SIGHUP
    hv.run(11.0)
    rt.cycle()
    assert fake.read("irq/80/smp_affinity_list") == "1\n" and 80 in dom0.banned()
    list(iteration)                            # the rescan iteration ends
    # a minute of both running
    for _ in range(6):
        list(model.tick())
        hv.run(10.5)
        rt.cycle()
    assert 80 in model.banned, "irqbalance never learnt that IRQ 80 is banned: it keeps balancing it"


def test_an_irq_banned_yet_moved_again_signals_irqbalance_again(tmp_path):
    """Whatever swallowed the SIGHUPs, an IRQ on our ban list that someone moved (irqbalance
    balancing it still) is moved back and irqbalance signalled again, at each look."""
    hv = host_with_guest_3(tmp_path)
    fake = dom0_tree(tmp_path)
    fake.irq(80, "vif3.0-q0-tx", allowed="0-1")
    hups = []
    dom0 = Dom0Proc(fake.root, set_affinity=lambda tid, cpus: None, run_dir=str(tmp_path / "run"),
                    clock_ticks=100, signaller=lambda pid, sig: hups.append(sig))
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert 80 in dom0.banned() and hups == [signal.SIGHUP]
    hv.run(1.0)
    rt.cycle()  # (the change of the list is seen: a reminder is due later)
    fake.irq(80, "vif3.0-q0-tx", allowed="0-1")  # irqbalance moved it back over every vCPU
    hv.run(10.5)
    rt.cycle()
    assert fake.read("irq/80/smp_affinity_list") == "1\n"
    assert hups == [signal.SIGHUP] * 2, hups


def test_a_ban_list_left_by_the_run_before_is_signalled_again_after_a_start(tmp_path):
    """A daemon restarted just after a change of the list (its SIGHUP perhaps dropped) sends
    irqbalance one more 25 s after it starts; with no list, none."""
    hv = sim_host(tmp_path)
    fake = dom0_tree(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "irqbalance-banned-irqs").write_text("80\n")
    hups = []
    dom0 = Dom0Proc(fake.root, set_affinity=lambda tid, cpus: None, run_dir=str(run_dir),
                    clock_ticks=100, signaller=lambda pid, sig: hups.append(sig))
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert hups == []
    for _ in range(3):
        hv.run(10.0)
        rt.cycle()
    assert hups == [signal.SIGHUP]
