"""``sim init --force`` does not replace a simulated host while a page mover or a place
of one of its VMs runs: each holds its VM's lock beside the state database (from its
claim to its exit), and the new host deletes that database.

Only xapi-numad's lock was checked.  A mover (a background one outlives the command
or the plugin call that started it) moves one batch per store transaction, by domid:
its next batch would move the pages of whatever domain of the new host has that
domid, and its journal would go to the deleted database.  xapi-numa-rrdd, the other
long-running process, only reads the host."""
import os

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.state.db import Database
from xapi_numa.state.locks import vm_lock
from xapi_numa.state.moves import MoveJournal

INIT = ["--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G"]


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path] + INIT) == 0
    assert main(["sim", "create", path, "g", "--vcpus", "1", "--memory", "256M", "--type", "pvh"]) == 0
    uuid = next(d.uuid for d in SimHypervisor(path).domains() if d.name == "g")
    return path, uuid


@pytest.mark.parametrize("kind, said", [("move", "a memory move"), ("place", "a place")])
def test_the_host_is_not_replaced_while_a_vm_lock_is_held(host, capsys, kind, said):
    path, uuid = host
    db = Database(path + ".ledger.db")
    lock = MoveJournal(db).lock_for(uuid) if kind == "move" else vm_lock(db.path, kind, uuid)
    assert lock.try_acquire()  # as a mover holds it from its claim to its exit
    before = open(path).read()
    try:
        capsys.readouterr()
        assert main(["sim", "init", path, "--force"] + INIT) == 1
        err = capsys.readouterr().err
        assert "{} of VM {} runs on the simulated host".format(said, uuid) in err, err
        assert "{}-{}.lock".format(kind, uuid) in err and len(err.strip().splitlines()) == 1, err
        assert open(path).read() == before and os.path.exists(path + ".ledger.db")
    finally:
        lock.release()
        db.close()
    assert main(["sim", "init", path, "--force"] + INIT) == 0  # once it has ended
    assert [d.name for d in SimHypervisor(path).domains()] == ["Domain-0"]


def test_a_lock_left_by_an_ended_process_holds_nothing(host):
    path, uuid = host
    db = Database(path + ".ledger.db")
    lock = MoveJournal(db).lock_for(uuid)
    assert lock.try_acquire()
    lock.release()  # its file stays (lock files are never deleted): nobody holds it
    db.close()
    assert main(["sim", "init", path, "--force"] + INIT) == 0
