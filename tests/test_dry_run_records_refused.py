"""A dry run whose login xapi took but whose read of the VMs' records it refused (a pool
member whose master is gone answers HOST_IS_SLAVE; xapi in emergency mode) says so, with
xapi's reason, and not "xapi: unreachable", which sent the admin looking for a stopped
toolstack that was answering."""
from xapi_numa.backends.xapi_errors import XapiError
from xapi_numa.cli.rebalance import UNREACHABLE, xapi_state
from xapi_numa.ops.xapi_link import XapiLink


def _session(refuse: list):
    class Session:
        class xenapi:
            class VM:
                @staticmethod
                def get_all_records():
                    if refuse:
                        raise XapiError(refuse)
                    return {"OpaqueRef:a": {"uuid": "a", "other_config": {}}}

            class session:
                @staticmethod
                def logout():
                    return None
    return Session()


def test_records_refused_after_a_login_are_said_with_xapis_reason():
    refuse = ["HOST_IS_SLAVE", "192.0.2.1"]
    link = XapiLink(lambda: _session(refuse), lambda: 0.0)
    link.refresh()
    said = xapi_state(link)
    assert said.startswith("VM records refused: "), said
    assert "HOST_IS_SLAVE" in said and "192.0.2.1" in said and "unreachable" not in said, said
    assert said.endswith(UNREACHABLE.partition(": ")[2]), said  # the same consequence


def test_a_read_that_works_again_is_consulted_and_the_refusal_is_forgotten():
    refuse = ["HOST_IS_SLAVE", "192.0.2.1"]
    now = [0.0]
    link = XapiLink(lambda: _session(refuse), lambda: now[0])
    link.refresh()
    del refuse[:]
    now[0] = 120.0  # past the back-off
    link.refresh()
    assert link.records_refusal is None and xapi_state(link) == "consulted"


def test_an_unreachable_xapi_is_still_unreachable():
    link = XapiLink(lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "refused")), lambda: 0.0)
    link.refresh()
    assert xapi_state(link) == UNREACHABLE
