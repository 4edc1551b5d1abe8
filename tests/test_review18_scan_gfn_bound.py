"""Review 18: a memory scan sized its byte per gfn by the highest gfn libxenctrl gave, plus
one, with no bound: 2^64 - 1 wrapped the count to 0 (an empty map of a running guest) and an
absurd one asked for terabytes, in the C, the Python binding and the OCaml stub alike (all
three size it from xn_mig_max_gfn).  Xen 4.17 gives an HVM or PVH guest (the only ones whose
memory moves) at most 48 bits of physical address: xn_mig_max_gfn now refuses a highest gfn
at or past 2^36 with E2BIG, and xn_mig_scan a count past it.  Run over the fake libxenctrl,
told what to answer by FAKE_XC_MAX_GPFN (the OCaml side is in ocaml-stubs/test)."""
from conftest import needs
from fake_runs import fake_env, run_driver, run_python
from test_native_c import CC, HAVE_XEN_DEV

DRIVER = r"""
#define main all_pagemove_tests
#include "test_pagemove.c"
#undef main
static int said(xn_handle *h, const char *top, uint64_t *max)
{
    int rc;
    setenv("FAKE_XC_MAX_GPFN", top, 1);
    rc = xn_mig_max_gfn(h, 1, max);
    unsetenv("FAKE_XC_MAX_GPFN");
    return rc;
}
int main(void)
{
    static uint8_t cls[16];
    struct xn_mig_scan_stats stats;
    xn_handle *h = NULL;
    uint64_t max = 7;
    if (!bind_fake())
        return 1;
    CHECK(xn_open(&h) == 0);
    if (h) {
        CHECK(said(h, "18446744073709551615", &max) == -E2BIG && max == 7); /* 2^64 - 1: + 1 wraps to 0 */
        CHECK(said(h, "68719476736", &max) == -E2BIG && max == 7);          /* 2^36: past 48-bit addresses */
        CHECK(said(h, "68719476735", &max) == 0 && max == 68719476735ull);  /* the highest a guest can have */
        CHECK(said(h, "32767", &max) == 0 && max == 32767);
        /* a count past the bound handed to the scan directly: refused before a byte of cls is written */
        memset(cls, 0xee, sizeof(cls));
        CHECK(xn_mig_scan(h, 1, 68719476737ull, cls, 0, NULL, &stats) == -E2BIG && cls[0] == 0xee);
        xn_close(h);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return 0;
}
"""

PY_OVER_FAKE = r"""
import os
from xapi_numa.backends.xen import XenHypervisor
from xapi_numa.errors import HypervisorError

hv = XenHypervisor()
print("as is:", len(hv.memory_map(1).classes))
for top in (2 ** 64 - 1, 2 ** 40):
    os.environ["FAKE_XC_MAX_GPFN"] = str(top)
    try:
        print(top, "read:", len(hv.memory_map(1).classes))
    except HypervisorError as err:
        print(top, "refused:", err.errno_name, err.message)
"""


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_library_refuses_a_highest_gfn_no_guest_can_have(tmp_path):
    proc = run_driver(tmp_path, DRIVER, fake_env(tmp_path))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("6 passed, 0 failed"), proc.stdout + proc.stderr


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_python_binding_says_what_is_wrong(tmp_path):
    proc = run_python(tmp_path, PY_OVER_FAKE, fake_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (the map is as long as the scan classified: to the fake's magic pages, 32000 and 32001)
    assert "as is: 32002" in proc.stdout, proc.stdout
    for top in (2 ** 64 - 1, 2 ** 40):
        said = next((line for line in proc.stdout.splitlines() if line.startswith(str(top) + " ")), "")
        assert said.startswith("{} refused: E2BIG".format(top)), proc.stdout
        assert "domain 1" in said and "0x1000000000" in said and "48 bits" in said, said
