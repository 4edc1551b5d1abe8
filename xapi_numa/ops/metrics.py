"""What xapi-numa publishes to xcp-rrdd: per-VM NUMA data sources, as values.

Read through the Hypervisor port (one snapshot with pages per node); turned
into :class:`DataSource` values that :mod:`xapi_numa.backends.rrdd` encodes.
Names and meanings follow XenServer 9's own plugins where they exist
(xen-api's ``rrdp-squeezed`` and ``rrdp-cpu``):

* ``memory_numa_node_<n>`` (bytes, gauge): the VM's memory on host node n,
  one per host node;
* ``numa_nodes`` (count, gauge): the nodes holding more than
  :data:`NODE_USED_PAGES` pages of the VM (a node counts only above 4096
  pages, 16 MiB, as XenServer 9 counts);
* ``numa_node_nonaffine_vcpus`` (fraction, derive): time the VM's vCPUs ran
  or waited outside their soft affinity, in seconds per vCPU, so that xcp-rrdd's
  rate is the fraction of vCPU time spent away from home (0..1).  XenServer's
  patched Xen counts this in the scheduler; here it is *sampled*: a vCPU found
  outside its soft affinity is charged the time since the previous sample.

and two of ours, with no XenServer equivalent:

* ``numa_local_share`` (fraction, gauge): the share of the VM's memory on its
  home nodes (:func:`xapi_numa.core.locality.local_share`);
* ``numa_vcpus_outside_soft`` (count, gauge): vCPUs outside their soft
  affinity at the sample (:func:`xapi_numa.core.locality.outside_soft`).

On XenServer's patched Xen (per-domain node-page query native) xapi's own
plugins already publish the XenServer names for every VM, so they are left out
there (xcp-rrdd keys data sources by VM and name: two plugins must not both
send one).  The running total behind the derive is carried between samples in
a :class:`NonaffineTally` value owned by the caller.
"""
from typing import Dict, List, Mapping, Optional, Tuple

import attrs

from xapi_numa.core import locality
from xapi_numa.errors import InvalidArgument
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.ports.hypervisor import Capabilities

NODE_USED_PAGES = 4096  # XenServer 9: a node is "used" by a VM only above this many pages
VALUE_TYPES = ("int64", "float")
DS_TYPES = ("gauge", "absolute", "derive")
XENSERVER_NAMES = ("memory_numa_node_", "numa_nodes", "numa_node_nonaffine_vcpus")
NAME_CHOICES = ("auto", "all", "own")  # XenServer's names: unless xapi sends them / always / never


@attrs.frozen
class DataSource:
    """One value for xcp-rrdd, with the metadata it wants (protocol v2 field names)."""

    name: str
    owner: str  # "host", or "vm UUID"
    value: float
    value_type: str = attrs.field(validator=attrs.validators.in_(VALUE_TYPES))
    type: str = attrs.field(default="gauge", validator=attrs.validators.in_(DS_TYPES))
    units: str = ""
    description: str = ""
    minimum: float = 0.0
    maximum: float = float("inf")
    default: bool = False


@attrs.frozen
class NonaffineTally:
    """Per VM UUID: seconds (per vCPU) spent outside soft affinity so far, and when last sampled."""

    seconds: Mapping[str, float] = attrs.field(factory=dict)
    time: float = -1.0  # host clock at the last sample; negative before the first


def xenserver_publishes_numa(caps: Capabilities) -> bool:
    """Does xapi itself publish the XenServer 9 NUMA names here (its patched Xen)?"""
    return caps.features.get("node_pages") == "native"


def nodes_used(pages: Mapping[int, int]) -> int:
    """Nodes holding more than NODE_USED_PAGES pages of a VM (XenServer 9's numa_nodes)."""
    return sum(1 for p in pages.values() if p > NODE_USED_PAGES)


def advance_tally(tally: NonaffineTally, snap: HostSnapshot) -> NonaffineTally:
    """Charge every vCPU found outside its soft affinity the time since the last sample."""
    dt = snap.time - tally.time if tally.time >= 0 else 0.0
    dt = max(0.0, dt)  # a clock that went back charges nothing
    seconds = {}
    for d in snap.domains:
        if d.domid == 0:
            continue
        vcpus = snap.vcpus.get(d.domid, ())
        outside = sum(1 for v in vcpus if locality.outside_soft(v, snap.topology))
        per_vcpu = dt * outside / len(vcpus) if vcpus else 0.0
        seconds[d.uuid] = tally.seconds.get(d.uuid, 0.0) + per_vcpu
    # a VM whose vCPUs were not read this time is not gone: its total stays (dropped, its derive
    # went back to 0 at its next sample, a counter reset to xcp-rrdd); VMs gone since are dropped
    seconds.update((uuid, tally.seconds[uuid]) for uuid in snap.unread if uuid in tally.seconds)
    return NonaffineTally(seconds, snap.time)


def vm_sources(snap: HostSnapshot, tally: NonaffineTally, with_xenserver_names: bool) -> List[DataSource]:
    """Every data source of every guest in the snapshot (tally already advanced to it).  A
    guest whose pages per node are not known (stock Xen: not scanned yet, or a host too big
    to scan) still has the sources that come from its vCPUs."""
    out = []
    node_ids = [n.id for n in snap.topology.nodes]
    for d in snap.domains:
        if d.domid == 0:
            continue
        owner = "vm " + d.uuid
        pages = snap.pages.get(d.domid)
        vcpus = snap.vcpus.get(d.domid, ())
        if with_xenserver_names:
            out += _xenserver_sources(owner, pages, node_ids, tally.seconds.get(d.uuid, 0.0))
        if pages is not None:
            homes = locality.home_nodes(vcpus, snap.topology)
            out.append(DataSource("numa_local_share", owner, locality.local_share(pages, homes), "float",
                                  units="(fraction)", maximum=1.0,
                                  description="Share of the VM's memory on the nodes its vCPUs call home"))
        out.append(DataSource("numa_vcpus_outside_soft", owner,
                              sum(1 for v in vcpus if locality.outside_soft(v, snap.topology)), "int64",
                              units="count", description="vCPUs running or queued outside their soft affinity"))
    return out


def _xenserver_sources(owner: str, pages: Optional[Mapping[int, int]], node_ids: List[int],
                       nonaffine: float) -> List[DataSource]:
    """XenServer 9's names; the page-based ones only where ``pages`` is known."""
    out = []
    if pages is not None:
        out += [DataSource("memory_numa_node_{}".format(n), owner, pages.get(n, 0) << PAGE_SHIFT, "int64",
                           units="B", description="Memory from NUMA node {} used by VM".format(n))
                for n in node_ids]
        out.append(DataSource("numa_nodes", owner, nodes_used(pages), "int64", units="count",
                              description="Number of NUMA nodes used by VM"))
    out.append(DataSource("numa_node_nonaffine_vcpus", owner, nonaffine, "float", type="derive",
                          units="(fraction)", maximum=1.0,
                          description="Fraction of vCPU time running outside of vCPU soft-affinity"))
    return out


def check_names(names: str, field: str = "names") -> str:
    """``names`` if it is one of NAME_CHOICES, else InvalidArgument naming ``field``."""
    if names not in NAME_CHOICES:
        raise InvalidArgument(field, "unknown choice {!r}".format(names), ", ".join(NAME_CHOICES))
    return names


def with_xenserver_names(names: str, caps: Capabilities) -> bool:
    """Publish XenServer 9's names?  ``names`` is one of NAME_CHOICES."""
    names = check_names(names)
    return names == "all" or (names == "auto" and not xenserver_publishes_numa(caps))


def collect(snap: HostSnapshot, caps: Capabilities, tally: NonaffineTally,
            names: str = "auto") -> Tuple[List[DataSource], NonaffineTally]:
    """(data sources, next tally) for one reading of xcp-rrdd."""
    xs_names = with_xenserver_names(names, caps)
    tally = advance_tally(tally, snap)
    return vm_sources(snap, tally, xs_names), tally


def by_name(sources: List[DataSource]) -> Dict[Tuple[str, str], DataSource]:
    """(owner, name) -> source: what xcp-rrdd keys them by (and tests look them up by)."""
    return {(s.owner, s.name): s for s in sources}
