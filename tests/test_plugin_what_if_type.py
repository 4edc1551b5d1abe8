"""The plugin's what-if ``place`` (vcpus=, memory=, a policy; no vm) always predicted an HVM
build, whose 1 GiB extents a VM over several nodes is held in, and its answer did not say
which type it assumed; ``xapi-numa place`` has ``--type``.  It now takes ``type`` (pv, pvh,
hvm; default hvm) as the CLI does, refuses any other naming ``type`` and what is allowed,
and both answers say the type in ``domain_type``."""
import pytest
from test_plugin import err, ok, run
from test_review11_docs_place_fields import cli_json
from test_review19_what_if_guest_mask import nothing_reserved

# too big for one node of the test hosts (4 GiB each, dom0 on node 0): striped over both
WIDE = {"vcpus": "2", "memory": "5G", "mode": "preferred", "nodes": "1,0"}


def test_a_what_if_predicts_the_build_of_the_type_it_is_given_and_says_which(ctx):
    server, session, host, sid = ctx
    default = ok(run(server, host, sid, "place", WIDE))
    assert default["domain_type"] == "hvm" and default["nodes"] == [0, 1], default
    answers = {}
    for dtype in ("hvm", "pvh", "pv"):
        answers[dtype] = ok(run(server, host, sid, "place", dict(WIDE, type=dtype)))
        assert answers[dtype]["domain_type"] == dtype
        assert answers[dtype]["reserved"] is False and answers[dtype]["vm"] is None
        # the CLI, given the same type, answers the same
        cli = cli_json(server, host, "place", "--vcpus", "2", "--memory", "5G", "--mode", "preferred",
                       "--nodes", "1,0", "--type", dtype, "--dry-run")
        assert cli["domain_type"] == dtype and cli["memory"] == answers[dtype]["memory"], (dtype, cli)
    assert answers["hvm"]["memory"] == default["memory"]
    # an HVM build's low memory hole takes a GiB off its first GiBs, a PVH one's is smaller: the
    # most each node can get differs (node 1, listed first, is held a GiB more as hvm)
    assert answers["hvm"]["memory"] != answers["pvh"]["memory"], answers
    assert answers["hvm"]["memory"]["1"] > answers["pvh"]["memory"]["1"], answers
    assert nothing_reserved(server, host, sid)


@pytest.mark.parametrize("given", ["xen", "HVM ", "", "pv_in_pvh"])
def test_another_type_is_refused_naming_type_and_what_is_allowed(ctx, given):
    server, session, host, sid = ctx
    details = err(run(server, host, sid, "place", dict(WIDE, type=given)))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "type"], details
    assert "(allowed: pv, pvh, hvm)" in details[2], details
    assert nothing_reserved(server, host, sid)
    assert not any("Traceback" in d for d in details)
