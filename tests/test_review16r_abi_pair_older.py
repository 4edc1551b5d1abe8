"""Review 16r: the struct xn_mig_result grew max_restored and max_unknown (batch record
version 5), which the Xen adapter reads after every recovery.  On a dom0 the declarations
come from the libxenuma.h beside the prebuilt library (cffi's ABI mode), so a package
newer than that pair (a stale ``make dom0-lib``, $XAPI_NUMA_LIBDIR naming an older
release's directory) loaded, recovered a dead mover's batch (record removed, guest
unpaused), and only then died reading ``res.max_restored`` (an AttributeError: a
traceback, the journal row left running).  libxenuma_abi promises such a pair fails to
load: it now refuses it, naming what is missing."""
import os
import re
import shutil
import subprocess

import pytest
from conftest import needs
from test_native_c import HAVE_XEN_DEV, release_pair

from xapi_numa.backends import libxenuma_abi

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "libxenuma", "src", "libxenuma.h")
CC = shutil.which("gcc") or shutil.which("cc")


def _pair(tmp_path, header_text: str) -> str:
    """A directory with an empty libxenuma.so and the given header beside it (the header's
    missing fields are refused before the library is opened)."""
    src = tmp_path / "empty.c"
    src.write_text("int xn_placeholder;\n")
    subprocess.check_call([CC, "-shared", "-fPIC", "-o", str(tmp_path / libxenuma_abi.LIBRARY), str(src)])
    (tmp_path / libxenuma_abi.HEADER).write_text(header_text)
    return str(tmp_path)


def _older_header() -> str:
    """This header as it was before batch record version 5: xn_mig_result without its last fields."""
    with open(HEADER) as f:
        text = f.read()
    older = re.sub(r"\n    uint64_t max_restored;.*?\n    uint32_t reserved;\n", "\n", text, flags=re.S)
    assert older != text and "max_unknown" not in older
    return older


@needs(CC is not None, "no C compiler")
def test_a_library_older_than_the_package_fails_to_load(tmp_path):
    pytest.importorskip("cffi")
    with pytest.raises(ImportError) as refused:
        libxenuma_abi.load([_pair(tmp_path, _older_header())])
    assert "xn_mig_result" in str(refused.value) and "max_restored" in str(refused.value)
    assert "older" in str(refused.value)


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_pair_of_this_release_loads(tmp_path):
    """This release's library (the real one: the loader checks that it exports every function
    its header declares) beside its header."""
    pytest.importorskip("cffi")
    ffi, lib = libxenuma_abi.load([release_pair(tmp_path)])
    assert lib.xn_page_layout(ffi.new("uint8_t[]", 4096)) == lib.XN_GFN_RAM  # a call reaches the real library
    assert ffi.offsetof("struct xn_mig_result", "max_unknown") > ffi.offsetof("struct xn_mig_result", "recognised")
