"""The plugin's ``settle`` asks xapi once whether its VM is a control domain.

On a host with no state database yet it checked the VM (unknown, not running here, dom0) before
making one, then ``settle`` checked it all again: xapi was asked twice whether the VM is a control
domain, and about a control domain twice within each check (``control_domain_here`` asked again).
The plugin now hands the reference its check answered to ``settle``, which asks nothing of it again.
"""
import pytest

from test_plugin import err, ok, run
from test_review26_refusals_make_no_database import made_there

CONTROL = "VM.get_is_control_domain"


@pytest.mark.parametrize("who", ["guest", "dom0"])
def test_a_settle_on_a_host_with_no_state_database_asks_once_whether_the_vm_is_a_control_domain(ctx, who):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("web", 1, 256 << 20)
    if who == "dom0":
        ref = server.control_domains[host]
        uuid = server.vms[ref]["uuid"]
    else:
        session.xenapi.VM.start_on(ref, host, False, False)
    assert made_there(server.ledgers[host]) == []
    asked = server.calls[CONTROL]
    answer = run(server, host, sid, "settle", {"vm": uuid})
    assert server.calls[CONTROL] - asked == 1, who  # before: 2
    if who == "dom0":
        assert err(answer)[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "this host's control domain" in err(answer)[2]
        assert made_there(server.ledgers[host]) == []
    else:
        assert ok(answer)["vm"] == uuid and made_there(server.ledgers[host])
