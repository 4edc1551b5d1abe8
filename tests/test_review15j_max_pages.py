"""Review 15j: a page-move batch (and recovery) raised the domain's max_pages to back
every released gfn again and left it raised: squeezed's cap below a shrinking guest's
page count (Xen allows max < tot) was lifted for good, as was a page of allowance per
frame the release could not free.  The C test runs over the fake libxenctrl."""
import os
import subprocess

from conftest import needs
from test_native_c import CC, HAVE_XEN_DEV, SRC, TESTS, build_fake_xenctrl, compile_c, library_sources

DRIVER = r"""
#define main all_pagemove_tests
#include "test_pagemove.c"
#undef main
int main(void)
{
    xn_handle *h = NULL;
    if (!bind_fake() || !mkdtemp(strcpy(dir, "/tmp/xn-review15j-XXXXXX")))
        return 1;
    snprintf(record, sizeof(record), "%s/move-1.batch", dir);
    CHECK(xn_open(&h) == 0);
    if (h) {
        test_a_raised_maximum_is_given_back(h);
        xn_close(h);
    }
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return 0;
}
"""


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_a_batch_gives_back_the_maximum_it_raised(tmp_path):
    fakes = build_fake_xenctrl(str(tmp_path / "fakes"), False)
    driver = tmp_path / "driver.c"
    driver.write_text(DRIVER)
    exe = str(tmp_path / "driver")
    compile_c(["-I", SRC, "-I", TESTS, "-o", exe, str(driver), *library_sources(),
               "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    env = dict(os.environ, LD_LIBRARY_PATH=fakes)
    env.pop("FAKE_XC_FAIL", None)
    proc = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(", 0 failed"), proc.stdout + proc.stderr
    assert int(proc.stdout.split()[-4]) >= 12, proc.stdout
