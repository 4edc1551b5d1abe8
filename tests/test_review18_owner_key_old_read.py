"""A live owner is not "taken over" by a caller whose read was too old (a review, rB).

That caller adds the next generation of the owner key over a live one it did not see,
reads back, finds the live key below its own and removes its own.  In between, the
owner's own check (``still_owning``, before each write) saw a key above its own and
failed the place with NUMA_VM_BUSY "taken over", giving back its reservation for
nothing.  A key above one's own is a takeover only once one's own token is stale."""
import pytest

from xapi_numa.errors import VmBusy
from xapi_numa.ops.start_placement import OWNER_KEY, owner_token, still_owning

NOW = 1_000_000.0


class _Calls:
    def __init__(self, config):
        self.config = config

    def get_other_config(self, vm):
        return dict(self.config)

    def get_all(self):
        return ["OpaqueRef:pool"]

    def get_master(self, pool):
        return "OpaqueRef:master"

    def get_servertime(self, host):
        return "19700112T13:46:40Z"  # NOW, as xapi writes its time


class _Session:
    def __init__(self, config):
        calls = _Calls(config)
        self.xenapi = type("X", (), {"VM": calls, "pool": calls, "host": calls})()


def test_a_live_owner_below_an_old_reads_key_still_owns():
    mine, late = owner_token(NOW), owner_token(NOW)
    still_owning(_Session({OWNER_KEY: mine, OWNER_KEY + ".1": late}), "vm", "uuid", mine)  # no VmBusy


def test_a_stale_owner_below_a_takeovers_key_is_taken_over():
    mine, winner = owner_token(NOW - 1000), owner_token(NOW)  # ours ran out 880 s ago
    with pytest.raises(VmBusy) as err:
        still_owning(_Session({OWNER_KEY: mine, OWNER_KEY + ".1": winner}), "vm", "uuid", mine)
    assert "taken over" in str(err.value.params)


@pytest.mark.parametrize("config", [{}, {OWNER_KEY: "someone-else/9999999999"}])
def test_an_owner_whose_key_is_gone_is_taken_over(config):
    with pytest.raises(VmBusy):
        still_owning(_Session(config), "vm", "uuid", owner_token(NOW))
