"""Review 18: the ABI loader checked what this package needs (xn_mig_move_as ...) only in
the text of the libxenuma.h beside the prebuilt library, never in the library itself.
A new header beside an old libxenuma.so (a copy of one file only, a stale
$XAPI_NUMA_LIBDIR) loaded, and cffi only said the function is missing on the first call
to it, possibly after a recovery had already removed its batch record.  The loader now
refuses, at load, a library that does not export every function its header declares,
naming the file, the symbols and what to do.

The libraries here are the real C of this release (gcc, as the Makefile's shared library),
one of them with xn_mig_move_as kept local by a version script: an older build."""
import os
import re

import pytest
from conftest import needs
from test_native_c import CC, HAVE_XEN_DEV, HEADER, release_pair

from xapi_numa.backends import libxenuma_abi

@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_a_library_lacking_a_function_of_its_header_fails_to_load(tmp_path):
    pytest.importorskip("cffi")
    pair = release_pair(tmp_path / "older", hidden=("xn_mig_move_as", "xn_mig_record_busy"))
    with pytest.raises(ImportError) as refused:
        libxenuma_abi.load([pair])
    said = str(refused.value)
    assert os.path.join(pair, libxenuma_abi.LIBRARY) in said
    assert "xn_mig_move_as" in said and "xn_mig_record_busy" in said
    assert "same release" in said


def test_every_function_the_package_calls_is_checked():
    """The functions the loader checks (the header's, as it reads them) include every one
    this package calls: none left out by the parser."""
    package = os.path.join(os.path.dirname(HEADER), "..", "..", "xapi_numa")
    called = set()
    for top, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(top, name)) as f:
                    called |= set(re.findall(r"\blib\.(xn_\w+)", f.read()))
    with open(HEADER) as f:
        checked = set(libxenuma_abi.functions(f.read()))
    assert {"xn_mig_move_as", "xn_open", "xn_mig_scan_map"} <= called
    assert called - checked == set()
