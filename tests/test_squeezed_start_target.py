"""A VM's start on a host short of its dynamic maximum but with room for its dynamic minimum.

xenopsd asks squeezed to reserve between the VM's dynamic minimum and maximum (each plus the
build's overhead, in KiB rounded up) and starts it at the lesser of its dynamic maximum and the
reservation less the overhead; squeezed, where no domain can balloon, reserves what is free
above the 9 MiB it keeps (72 MiB since CA-423173), at most the maximum, and refuses below the
minimum.  place planned every start for the dynamic maximum, so such a host was refused
(NUMA_NO_CAPACITY) though xapi starts the VM there, with less (populate-on-demand)."""
import pytest

from xapi_numa.core.overhead import xapi_model
from xapi_numa.core.xenopsd_build import squeezed_target
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
LEAST, MOST = 9 * MIB, 72 * MIB  # squeezed's target_host_free_mem, before and since CA-423173


def _host(server, session, host):
    """The host's simulated hypervisor, its UUID and its free memory (no claim, no reservation)."""
    hv = server.sims[host]
    return hv, session.xenapi.host.get_uuid(host), sum(m.claimable for m in hv.node_memory())


def _filled(server, session, host, left: int) -> int:
    """Start a VM that leaves about ``left`` bytes free on ``host`` (no ballooning: its dynamic
    range is one figure); the free memory it leaves."""
    hv, _, free = _host(server, session, host)
    ref, _ = server.add_vm("filler", 1, (free - left) // GIB * GIB)
    session.xenapi.VM.start_on(ref, host, False, False)
    return _host(server, session, host)[2]


def test_a_host_between_the_dynamic_min_and_max_is_placed_holding_squeezeds_target(ctx, tmp_path):
    server, session, host, _ = ctx
    free = _filled(server, session, host, 5 * GIB)
    hv, host_uuid, _ = _host(server, session, host)
    dmax, dmin = free + GIB, free - 2 * GIB
    ref, uuid = server.add_vm("vm", 2, dmax, dynamic_min=dmin)
    overhead = xapi_model(dmax, 2, 1.0, "hvm")
    # what squeezed reserves (KiB), less the overhead, as xenopsd's initial_target; built in whole MiB
    target = min(dmax, min((free - LEAST) // KIB, -(-(dmax + overhead) // KIB)) * KIB - overhead)
    built = -(-(target // KIB) // KIB) * MIB
    ledger = Ledger(str(tmp_path / "ledger"))
    dry = start_placement.place_vm(hv, ledger, session, uuid, dry_run=True, host_uuid=host_uuid)
    start_placement.check_place(hv, ledger, session, uuid, host_uuid)
    placed = start_placement.place_vm(hv, ledger, session, uuid, host_uuid=host_uuid)
    assert dry["memory_target"] == placed["memory_target"] == built < dmax
    assert placed["domain_type"] == "hvm"  # (its build is PoD, predicted as PV's RAM)
    held = placed["reservation"]["total"]
    assert built <= held <= free, (built, held, free)


def test_a_host_short_of_the_dynamic_min_is_refused_naming_it(ctx, tmp_path):
    server, session, host, _ = ctx
    free = _filled(server, session, host, 5 * GIB)
    hv, host_uuid, _ = _host(server, session, host)
    _, uuid = server.add_vm("vm", 2, free + GIB, dynamic_min=free + 512 * MIB)
    ledger = Ledger(str(tmp_path / "ledger"))
    for place in (lambda: start_placement.place_vm(hv, ledger, session, uuid, dry_run=True, host_uuid=host_uuid),
                  lambda: start_placement.check_place(hv, ledger, session, uuid, host_uuid),
                  lambda: start_placement.place_vm(hv, ledger, session, uuid, host_uuid=host_uuid)):
        with pytest.raises(NoCapacity) as refused:
            place()
        assert "memory_dynamic_min" in refused.value.message and refused.value.params[0] == "memory_dynamic_min"
    assert ledger.outstanding() == {}


def test_with_a_ballooning_domain_the_dynamic_maximum_is_planned(ctx, tmp_path):
    """A domain that may balloon gives memory to squeezed, or takes it back, during the start:
    the build may be anything up to the dynamic maximum, which is what is held (and a host
    short of it refused, as before)."""
    server, session, host, _ = ctx
    hv, host_uuid, free = _host(server, session, host)
    balloon, _ = server.add_vm("balloon", 1, (free - 5 * GIB) // GIB * GIB,
                               dynamic_min=(free - 5 * GIB) // GIB * GIB - GIB)
    session.xenapi.VM.start_on(balloon, host, False, False)
    free = _host(server, session, host)[2]
    _, uuid = server.add_vm("vm", 2, free + GIB, dynamic_min=free - 2 * GIB)
    with pytest.raises(NoCapacity) as refused:
        start_placement.place_vm(hv, Ledger(str(tmp_path / "ledger")), session, uuid, dry_run=True,
                                 host_uuid=host_uuid)
    assert refused.value.params[:1] != ("memory_dynamic_min",)
    # room for its dynamic maximum, but not above squeezed's slack: squeezed may give it less, or all
    dmax = (free - xapi_model(free, 1, 1.0, "pv") - 4 * MIB) // MIB * MIB
    _, small = server.add_vm("small", 1, dmax, dynamic_min=dmax - 2 * GIB, domain_type="pv")
    placed = start_placement.place_vm(hv, Ledger(str(tmp_path / "ledger")), session, small, dry_run=True,
                                      host_uuid=host_uuid)
    assert placed["memory_target"] == dmax


@pytest.mark.parametrize("free, expected", [
    # the most squeezed reserves (above 9 MiB) less the overhead, at most the dynamic maximum
    (8 * GIB, 4 * GIB), (4 * GIB + 64 * MIB + LEAST, 4 * GIB), (4 * GIB + 64 * MIB + LEAST - KIB, 4 * GIB - KIB),
    (3 * GIB, 3 * GIB - LEAST - 64 * MIB),
    # refused where 72 MiB kept free leaves less than the minimum plus the overhead
    (2 * GIB + 64 * MIB + MOST, 2 * GIB + MOST - LEAST), (2 * GIB + 64 * MIB + MOST - KIB, None), (GIB, None)])
def test_squeezeds_target_with_no_ballooning_domain(free, expected):
    assert squeezed_target(free, 2 * GIB, 4 * GIB, 64 * MIB, balloons=False) == expected
    assert squeezed_target(free, 2 * GIB, 4 * GIB, 64 * MIB, balloons=True) == 4 * GIB


def test_xenopsds_kib_rounding_of_the_range():
    """xenopsd asks for the range in KiB rounded up (kib_of_bytes_used): a minimum plus
    overhead a byte over whole KiB needs a KiB more free."""
    low = 2 * GIB + 64 * MIB + 1
    assert squeezed_target(low - 1 + KIB + MOST, 2 * GIB + 1, 4 * GIB, 64 * MIB, False) is not None
    assert squeezed_target(low - 1 + KIB + MOST - KIB, 2 * GIB + 1, 4 * GIB, 64 * MIB, False) is None


def test_a_vm_with_no_balloon_range_reads_no_free_memory_for_its_target():
    """xapi's default VM (dynamic minimum = maximum) starts at its maximum or not at all: its start
    target needs no second read of the host's reservations (the placement reads them anyway)."""
    from xapi_numa.core.topology import Topology
    from xapi_numa.ops.place_request import request_for

    def unread() -> int:
        raise AssertionError("the host's free memory was read for a VM with no balloon range")

    record = {"uuid": "fixed", "other_config": {}, "VCPUs_max": "2", "domain_type": "hvm",
              "memory_static_max": str(4 * GIB), "memory_dynamic_max": str(4 * GIB),
              "memory_dynamic_min": str(4 * GIB), "platform": {}}
    assert request_for(record, Topology.uniform(2, 4, 8 * GIB), free=unread).memory == 4 * GIB


def test_a_start_racing_another_sizes_its_target_from_the_planners_own_fresh_read(ctx, tmp_path, monkeypatch):
    """Another VM starts on this host just as the place reads it: the ledger refuses the place's
    reservation where the memory went meanwhile, or its planner reads the host with less.  Its start
    target must come from the planner's own read (what squeezed will find free): it was read once,
    before the planner's reads, so the place planned the stale, larger target on a host with less,
    and was refused (NUMA_NO_CAPACITY) though squeezed gives it the less."""
    from xapi_numa.ops import reserve

    server, session, host, _ = ctx
    free = _filled(server, session, host, 5 * GIB)
    hv, host_uuid, _ = _host(server, session, host)
    dmax, dmin = free + GIB, free - 3 * GIB
    _, uuid = server.add_vm("vm", 2, dmax, dynamic_min=dmin)
    other, _ = server.add_vm("other", 1, GIB)
    overhead = xapi_model(dmax, 2, 1.0, "hvm")
    ledger = Ledger(str(tmp_path / "ledger"))
    real, raced = reserve.node_loads, []

    def racing(*args, **kwargs):  # the other VM's start lands as this place reads the host for its planner
        if not raced:
            raced.append(session.xenapi.VM.start_on(other, host, False, False))
        return real(*args, **kwargs)
    monkeypatch.setattr(reserve, "node_loads", racing)
    placed = start_placement.place_vm(hv, ledger, session, uuid, host_uuid=host_uuid)
    fresh = _host(server, session, host)[2]  # (this VM's reservation is not built: no claim)
    assert raced and fresh <= free - GIB
    target = squeezed_target(fresh, dmin, dmax, overhead, balloons=False)
    assert placed["memory_target"] == -(-(target // KIB) // KIB) * MIB < fresh
    assert placed["reservation"]["total"] <= fresh
