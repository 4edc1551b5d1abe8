"""vm-start follows the VM's home server (VM.affinity) among hosts where it fits as well.

xapi's datamodel: VM.affinity is "a host which the VM has some affinity for ... used as a
hint to the start call when it decides where to run the VM".  ``xe vm-start`` starts such a
VM there; xapi-numa's vm-start ignored it, so in a pool of like hosts a VM set to its home
server went to whichever host had the most headroom, then the first by name (review 22).
Now the home server comes right after the NUMA fit (nodes, distance, fallback): a fit as
good goes home, a worse one there does not."""
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import pool_queries

G = 1 << 30


def _home(server, ref, index):
    host = list(server.hosts)[index]
    server.vms[ref]["affinity"] = host
    return host


def test_a_vm_with_a_home_server_starts_there_when_it_fits_as_well(pool):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    home = _home(server, ref, 2)
    assert [host for _, host, _ in pool_ops.candidates(session, uuid)][0] == home
    placement = pool_queries.vm_placement(session, uuid)
    assert placement["options"][0]["host"] == server.hosts[home]["name_label"]
    started = pool_ops.vm_start(session, uuid)
    assert started["host_uuid"] == server.hosts[home]["uuid"] and server.vms[ref]["resident_on"] == home


def test_a_home_server_where_it_fits_worse_is_not_chosen(pool):
    server, session = pool
    ref, uuid = server.add_vm("big", 2, 3 * G)
    home = _home(server, ref, 2)
    sim = server.sims[home]
    for node in (0, 1):  # 3G no longer fits on one node of the home server
        sim.create("filler-{}".format(node), 1, 2 * G, hard=sim.topology().cpus_of_nodes([node]), load="idle",
                   auto_numa=False)
    ranked = pool_ops.candidates(session, uuid)
    assert ranked[0][1] != home and len(ranked[0][2]["nodes"]) == 1
    assert pool_ops.vm_start(session, uuid)["host_uuid"] != server.hosts[home]["uuid"]
