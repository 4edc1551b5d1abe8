"""The simulated host's state-file form: every field of a :class:`~.model.Host` as
plain JSON values, and back (the store checks the file's shape before this reads it)."""
import random
import uuid as uuidlib

from xapi_numa.backends.sim.domain import Domain
from xapi_numa.backends.sim.heap import assumed_dma_pages, zone_pages
from xapi_numa.backends.sim.model import STATE_VERSION, Host, scheduler_class
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument


def host_to_dict(self: Host) -> dict:
    """The host as the state file holds it."""
    topo = self.topology
    return {
        "version": STATE_VERSION,
        "topology": {
            "cpu_to_node": [c.node for c in topo.cpus],
            "cpu_to_core": [c.core for c in topo.cpus],
            "cpu_to_socket": [c.socket for c in topo.cpus],
            "memory_size": [n.memory_size for n in topo.nodes],
            "distances": [list(r) for r in topo.distances],
        },
        "xen_commandline": self.commandline,
        "scheduler": self.sched.name,
        "seed": self.seed,
        "tick": self.tick,
        "free": self.free,
        "next_domid": self.next_domid,
        "rng": _rng_state_to_json(self.rng.getstate()),
        "domains": [d.to_dict() for d in self.domains.values()],
        "sched": self.sched.to_dict(),
        "node_run_ticks": self.node_run_ticks,
        "node_wait_ticks": self.node_wait_ticks,
    }


def host_from_dict(data: dict) -> Host:
    """A host back from its state-file form (the shape is checked by the store first)."""
    if data.get("version") != STATE_VERSION:
        raise InvalidArgument("state", f"unsupported simulator state version {data.get('version')!r}")
    t = data["topology"]
    topo = Topology.from_arrays(t["cpu_to_node"], t["distances"], t["memory_size"],
                                cpu_to_core=t["cpu_to_core"], cpu_to_socket=t["cpu_to_socket"])
    host = Host.__new__(Host)
    host.topology = topo
    host.seed = data["seed"]
    host.tick = data["tick"]
    host.free = list(data["free"])
    host.size = [n.memory_size >> 12 for n in topo.nodes]
    host.next_domid = data["next_domid"]
    host.rng = random.Random()
    host.rng.setstate(_rng_state_from_json(data["rng"]))
    host.online = (1 << len(topo.cpus)) - 1
    host.node_mask = [sum(1 << c for c in n.cpus) for n in topo.nodes]
    host.cpu_node = [c.node for c in topo.cpus]
    nr_nodes = len(topo.nodes)
    host.node_run_ticks = list(data.get("node_run_ticks", [0] * nr_nodes))
    host.node_wait_ticks = list(data.get("node_wait_ticks", [0] * nr_nodes))
    host.domains = {}
    for dd in data["domains"]:
        d = Domain.from_dict(dd)
        d.uuid = _handle_text(d)
        host.domains[d.domid] = d
    if any("dma_pages" not in dd for dd in data["domains"]):  # written before the DMA zone
        assumed_dma_pages(host.domains.values(), host.size, zone_pages(data.get("xen_commandline", ""), host.size))
    # a file from before the simulator had a Xen command line: booted as by default (no dma_bits=)
    host.set_dma_zone(data.get("xen_commandline", ""))
    host.sched = scheduler_class(data["scheduler"]).from_dict(host, data["sched"])
    return host


def _handle_text(d: Domain) -> str:
    """A domain's UUID as Xen gives it back (16 bytes: lower case).  Before 2026-12-04 a
    host made through the Python API could hold any text there, which nothing that reads
    the domain list can match."""
    try:
        return str(uuidlib.UUID(d.uuid))
    except ValueError:
        raise InvalidArgument("state", "domain {} ({}) has the UUID {!r}, which is no UUID".format(
            d.domid, d.name, d.uuid), "a simulated host made again (xapi-numa sim init PATH --force)") from None


def _rng_state_to_json(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state_from_json(data) -> tuple:
    return (data[0], tuple(data[1]), data[2])
