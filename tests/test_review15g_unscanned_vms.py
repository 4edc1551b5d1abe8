"""Review 15g: on stock Xen, a VM whose pages per node have not been read (a host above
--page-scan-max-memory, a VM started since the last debug-key scan) lost every data source,
not only the page-based ones docs/install.md names: nothing at all was published for it."""
import attrs

from test_rrdd import StockXen, by_owner_name, host, read_v2  # noqa: F401 (host: a fixture)
from xapi_numa import rrdd_plugin
from xapi_numa.backends import rrdd
from xapi_numa.ops import metrics, page_scans

PAGE_BASED = {"memory_numa_node_0", "memory_numa_node_1", "numa_nodes", "numa_local_share"}
VCPU_BASED = {"numa_node_nonaffine_vcpus", "numa_vcpus_outside_soft"}


def names_of(out, owner):
    return {name for (who, name) in by_owner_name(read_v2(open(out.path, "rb").read())) if who == owner}


def test_a_host_above_the_scan_limit_still_gets_the_vcpu_sources(tmp_path, host):
    path, uuids = host
    hv = StockXen(path)
    out = rrdd.PluginFile(str(tmp_path / "m.bin"))
    big = page_scans.PageReadings(page_scans.ScanLimits(interval=600.0, max_memory=4 << 30))
    rrdd_plugin.publish_once(hv, out, metrics.NonaffineTally(), "all", "double", big)
    assert hv.scans == 0
    for vm in ("A", "B", "C"):
        assert names_of(out, "vm " + uuids[vm]) == VCPU_BASED, vm


def test_a_vm_started_since_the_last_scan_gets_its_vcpu_sources_at_once(tmp_path, host):
    path, uuids = host
    hv = StockXen(path)
    out = rrdd.PluginFile(str(tmp_path / "m.bin"))
    readings = page_scans.PageReadings(page_scans.ScanLimits(interval=600.0))
    tally, _ = rrdd_plugin.publish_once(hv, out, metrics.NonaffineTally(), "all", "double", readings)
    new = hv.sim.create("D", 2, 256 << 20, load="idle")
    hv.now += 5.0
    rrdd_plugin.publish_once(hv, out, tally, "all", "double", readings)
    d_uuid = next(d.uuid for d in hv.sim.domains() if d.name == "D")
    assert names_of(out, "vm " + d_uuid) == VCPU_BASED, new
    assert names_of(out, "vm " + uuids["A"]) == VCPU_BASED | PAGE_BASED
