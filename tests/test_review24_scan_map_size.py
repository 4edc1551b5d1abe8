"""Review 24: a memory scan's class map (a byte per gfn) was sized by the guest's highest gfn,
which a high MMIO or foreign mapping may put far past its RAM: for a guest of 8 MiB whose
highest gfn was 2^36 - 1 the Python binding asked for 64 GiB at once (a MemoryError
traceback where the kernel refuses it; otherwise 64 GiB written, the map being set to holes
first, and copied again), the OCaml stub likewise, and a probe allocated 16 bytes more per
gfn.  Measured over the fake: 2^28 gfns took 543 MiB of peak RSS, 2^30 took 2079 MiB.
libxenuma's xn_mig_scan_map now sizes the map itself by what the scan classifies (the gfns
typed, which stop after the last RAM page, and the toolstack's magic pages); both bindings
use it.  Run over the fake libxenctrl (FAKE_XC_MAX_GPFN says the highest gfn) under a limit
on address space no 64 GiB map fits in (the OCaml side is in ocaml-stubs/test)."""
from conftest import needs
from fake_runs import fake_env, run_driver, run_python
from test_native_c import CC, HAVE_XEN_DEV

HIGHEST = str(2 ** 36 - 1)  # the highest gfn Xen lets an HVM or PVH guest have

DRIVER = r"""
#define main all_pagemove_tests
#include "test_pagemove.c"
#undef main
#include <sys/resource.h>

/* What the fake guest is: RAM 0..2047, magic pages 32000 and 32001, the rest holes. */
static int as_the_fake_is(const uint8_t *cls, uint64_t nr)
{
    uint64_t i;
    for (i = 0; i < nr; i++)
        if (cls[i] != (i < RAM ? XN_GFN_RAM : i >= 32000 ? XN_GFN_MAGIC : XN_GFN_NOT_RAM))
            return 0;
    return 1;
}

int main(void)
{
    struct rlimit room = { 256ul << 20, 256ul << 20 };
    struct xn_mig_scan_stats stats;
    xn_handle *h = NULL;
    uint8_t *cls = (uint8_t *)1;
    uint64_t nr = 7;
    if (!bind_fake())
        return 1;
    snprintf(record, sizeof(record), "move-1.probe"); /* (run in the test's own directory) */
    CHECK(xn_open(&h) == 0);
    if (!h)
        return 1;
    setenv("FAKE_XC_MAX_GPFN", "68719476735", 1);
    CHECK(setrlimit(RLIMIT_AS, &room) == 0); /* no map of a byte per gfn to 2^36 fits */
    guest_reset();
    CHECK(xn_mig_scan_map(h, 1, 0, NULL, &cls, &nr, &stats) == 0);
    CHECK(nr == 32002 && as_the_fake_is(cls, nr) && stats.typed >= RAM && stats.typed < 32000);
    xn_mig_map_free(cls);
    CHECK(xn_mig_scan_map(h, 1, 5, record, &cls, &nr, &stats) == 0); /* with a probe */
    CHECK(nr == 32002 && as_the_fake_is(cls, nr));
    xn_mig_map_free(cls);
    settled(h);
    /* refusals leave no map */
    CHECK(xn_mig_scan_map(h, 1, 5, NULL, &cls, &nr, &stats) == -EINVAL && cls == NULL && nr == 0);
    CHECK(xn_mig_scan_map(h, 0, 0, NULL, &cls, &nr, &stats) == -EPROTOTYPE && cls == NULL && nr == 0);
    setenv("FAKE_XC_MAX_GPFN", "68719476736", 1);
    CHECK(xn_mig_scan_map(h, 1, 0, NULL, &cls, &nr, &stats) == -E2BIG && cls == NULL && nr == 0);
    /* the guest's whole space smaller than the map would reach: the map stops at its end */
    setenv("FAKE_XC_MAX_GPFN", "1999", 1);
    CHECK(xn_mig_scan_map(h, 1, 0, NULL, &cls, &nr, &stats) == 0 && nr == 2000 && as_the_fake_is(cls, nr));
    xn_mig_map_free(cls);
    xn_close(h);
    printf("%d passed, %d failed\n", passed, failed);
    return 0;
}
"""

PY_OVER_FAKE = r"""
import resource, sys
from xapi_numa.backends.xen import XenHypervisor

room = 1 << 30  # no 64 GiB map fits
resource.setrlimit(resource.RLIMIT_AS, (room, room))
hv = XenHypervisor()
for probe_ms in (0, 5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    classes = hv.memory_map(1, probe_ms).classes
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(probe_ms, len(classes), classes.count(b"\0"), classes[32000:], grew // 1024)
"""


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_library_sizes_the_map_by_what_it_classifies(tmp_path):
    proc = run_driver(tmp_path, DRIVER, fake_env(tmp_path, FAKE_XC_MAX_GPFN=HIGHEST))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("14 passed, 0 failed"), proc.stdout + proc.stderr


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_python_binding_reads_a_guest_with_a_far_highest_gfn(tmp_path):
    env = fake_env(tmp_path, FAKE_XC_MAX_GPFN=HIGHEST, XAPI_NUMA_RUN_DIR=str(tmp_path / "run"))
    proc = run_python(tmp_path, PY_OVER_FAKE, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.split(" ", 4) for line in proc.stdout.splitlines()]
    assert [line[:4] for line in lines] == [["0", "32002", "2048", repr(b"\x02\x02")],
                                            ["5", "32002", "2048", repr(b"\x02\x02")]], proc.stdout
    assert all(int(line[4]) < 64 for line in lines), proc.stdout  # MiB of peak RSS the scan added
