"""What a homing write costs, and why credit2 homing holds whole VMs (core/homing.py's docstring).

* A temporary pin is one affinity write when made and one when undone, each a
  single hypercall that sets the hard affinity only (soft affinity untouched).
* On the simulator's credit2 (Xen 4.17's model), after the seed scenario's last
  event: with only the displaced vCPUs pinned, the balancer pushes other vCPUs
  of the same VMs out past the 2 s deadline; with both VMs held, none is.
"""
import os
import sys

from xapi_numa.core.actions import PinTemporarily, RestorePin
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.state.db import Database
from xapi_numa.state.pins import PinJournal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import credit2_bound  # noqa: E402

ALL = frozenset(range(8))
NODE0 = frozenset(range(4))


class RecordingHypervisor:
    """Records every affinity call, as the Xen adapter would issue one hypercall each."""

    def __init__(self):
        self.calls = []

    def clock(self):
        return 100.0

    def boot_id(self):
        return ""  # (the port's default: not known)

    def set_vcpu_affinity(self, domid, vcpu, hard=None, soft=None):
        self.calls.append((domid, vcpu, hard, soft))


def test_a_pin_and_its_undo_are_one_hard_only_write_each(tmp_path):
    hv = RecordingHypervisor()
    db = Database(str(tmp_path / "state.db"))
    executor = Executor(hv, db)
    pin = executor.apply([PinTemporarily(5, "uuid-5", 2, NODE0, ALL, "displaced")])
    assert [o.status for o in pin] == [DONE]
    assert hv.calls == [(5, 2, NODE0, None)]  # soft None: the adapter passes only the hard flag
    assert [(p.vcpu, p.pinned_to) for p in PinJournal(db).entries()] == [(2, NODE0)]
    undo = executor.apply([RestorePin(5, "uuid-5", 2, ALL, "home")])
    assert [o.status for o in undo] == [DONE]
    assert hv.calls[1:] == [(5, 2, ALL, None)]
    assert executor.writes == 2 and PinJournal(db).entries() == []


def test_forgetting_a_pin_of_a_gone_vm_writes_nothing(tmp_path):
    hv = RecordingHypervisor()
    executor = Executor(hv, Database(str(tmp_path / "state.db")))
    executor.apply([RestorePin(None, "uuid-5", 2, None, "the VM is gone")])
    assert hv.calls == [] and executor.writes == 0


# the seed scenario's guests get domids in creation order after dom0: A 1, B 2, C 3
A_AND_C = {(domid, n) for domid in (1, 3) for n in range(28)}


def test_credit2_pushes_out_vcpus_of_the_vms_whose_displaced_vcpus_alone_were_pinned(tmp_path):
    writes, pinned, seen, worst = credit2_bound.one_run(str(tmp_path / "pairs.json"), 1, set())
    assert 0 < pinned < 56 and worst > 0
    assert seen and seen <= A_AND_C  # displaced after the deadline: vCPUs of A and C left unpinned


def test_credit2_holding_both_vms_keeps_every_vcpu_home_after_the_deadline(tmp_path):
    writes, pinned, seen, worst = credit2_bound.one_run(str(tmp_path / "held.json"), 1, set(A_AND_C))
    assert seen == set()
    assert pinned == 56 and writes == 2 * 56
