"""``sim init --force`` and what works on the host it replaces.

* The check for a mover, a place or xapi-numad and the replacement were two steps: one
  that started in between worked on the replaced host.  The VMs' locks (and xapi-numad's)
  are now held from the check to the end of the replacement.
* A mover or place whose ``--ledger`` / ``$XAPI_NUMA_LEDGER`` reached the simulated host's
  database through another path (a symlink to it, or to its directory) kept its locks
  beside that path, where the check never looked: the locks are now beside the file the
  path reaches, one directory per database.  (A symlinked directory reached the same
  lock directory already: the kernel resolves it.)
* The simulated dom0's tree was removed without its lock, under a process writing it."""
import os
import threading
import time

import pytest

from xapi_numa.backends.sim import backend as sim_backend
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.dom0_tree import Dom0Tree, forget_dom0_tree, open_sim_dom0, tree_root
from xapi_numa.cli.main import main
from xapi_numa.errors import StateError
from xapi_numa.ops import instance_lock
from xapi_numa.state.db import Database
from xapi_numa.state.locks import vm_lock
from xapi_numa.state.moves import MoveJournal

from test_review17_sim_init_under_a_mover import INIT, host  # noqa: F401 (a fixture: a host with a guest g)


def test_nothing_can_start_on_the_old_host_while_it_is_replaced(host, monkeypatch):
    path, uuid = host
    seen = {}
    real_init = SimHypervisor.init.__func__

    def init(cls, *args, **kwargs):  # the replacement, as another process would try it meanwhile
        db = path + ".ledger.db"
        seen["move"] = vm_lock(db, "move", uuid).try_acquire()  # (a VM never moved: no lock file before)
        seen["place"] = vm_lock(db, "place", uuid).try_acquire()
        try:
            os.close(instance_lock.acquire("sim:" + path))
            seen["daemon"] = True
        except StateError:
            seen["daemon"] = False
        return real_init(cls, *args, **kwargs)
    monkeypatch.setattr(sim_backend.SimHypervisor, "init", classmethod(init))
    assert main(["sim", "init", path, "--force"] + INIT) == 0
    assert seen == {"move": False, "place": False, "daemon": False}
    # released once the host is made
    assert vm_lock(path + ".ledger.db", "move", uuid).try_acquire()


def test_a_mover_reaching_the_database_through_a_symlink_is_seen(host, tmp_path, capsys):
    path, uuid = host
    db_path = path + ".ledger.db"
    Database(db_path).close()  # (made by the mover's first use)
    other = str(tmp_path / "alias.db")
    os.symlink(db_path, other)
    db = Database(other)  # --ledger OTHER, or $XAPI_NUMA_LEDGER=OTHER
    lock = MoveJournal(db).lock_for(uuid)
    assert lock.try_acquire()
    try:
        capsys.readouterr()
        assert main(["sim", "init", path, "--force"] + INIT) == 1
        assert "a memory move of VM {} runs on the simulated host".format(uuid) in capsys.readouterr().err
    finally:
        lock.release()
        db.close()


def test_the_dom0_tree_is_removed_under_its_lock(host):
    path, _ = host
    open_sim_dom0(SimHypervisor(path), os.path.realpath(path))  # (made, as any reader of dom0 makes it)
    root = tree_root(os.path.realpath(path))
    assert os.path.isdir(root)
    gone = threading.Event()
    with Dom0Tree(root, 1).locked():  # a writer in the middle of a sync
        worker = threading.Thread(target=lambda: (forget_dom0_tree(os.path.realpath(path)), gone.set()))
        worker.start()
        time.sleep(0.3)
        assert not gone.is_set() and os.path.isdir(root)
    worker.join(10)
    assert gone.is_set() and not os.path.exists(root)
