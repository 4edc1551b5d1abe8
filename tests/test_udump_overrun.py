"""Pages per node from debug key 'u' when the dump is bigger than Xen's console ring.

Xen prints the whole dump inside the hypercall that sends the key, so a dump
larger than the ring (``conring_size``; a few dozen domains on a big host) has
lost its head, the header and the first domains, before anything reads it.  The
adapter took the tail for a dump without the domain and answered ENOENT ("No
such file or directory") for a domain that exists; it now says what happened and
what to change.  Driven through the review-10 stand-in for the libxenuma binding,
with the library's real parser.
"""
import errno

import pytest

xen = pytest.importorskip("xapi_numa.backends.xen")

from test_review10_offline_cpus import TwoNodeHost  # noqa: E402

REAL_PARSE = xen.lib.xn_udump_parse
WHOLE = (b"(XEN) 'u' pressed -> dumping numa info (now = 101000000)\n"
         b"(XEN) Memory location of each domain:\n"
         b"(XEN) Domain 0 (total: 262144):\n(XEN)     Node 0: 131072\n(XEN)     Node 1: 131072\n"
         b"(XEN) Domain 1 (total: 256):\n(XEN)     Node 0: 256\n(XEN)     Node 1: 0\n")


class DumpingHost(TwoNodeHost):
    """Stock Xen (no native node-page query); each capture returns ``self.dump``."""

    def __init__(self, dump: bytes):
        super().__init__()
        self.dump = dump

    def xn_node_pages_native(self, h, domid, nr, pages):
        return -errno.ENOSYS

    def xn_udump_capture(self, h, buf, length, timeout_ms):
        buf[0:len(self.dump)] = self.dump
        length[0] = len(self.dump)
        return 0

    def xn_udump_parse(self, text, size, domid, nr, pages, total):
        return REAL_PARSE(text, size, domid, nr, pages, total)


def adapter(monkeypatch, dump: bytes):
    monkeypatch.setattr(xen, "lib", DumpingHost(dump))
    return xen.XenHypervisor(dump_interval=0.0)


def test_a_whole_dump_gives_the_pages(monkeypatch):
    assert adapter(monkeypatch, WHOLE).node_pages(1) == {0: 256, 1: 0}


def test_a_dump_that_lost_its_head_says_so(monkeypatch):
    tail = WHOLE[WHOLE.index(b"(XEN)     Node 1: 131072"):]  # the ring kept only the end
    with pytest.raises(xen.HypervisorError) as caught:
        adapter(monkeypatch, tail).node_pages(1)
    assert caught.value.errno == errno.EAGAIN and "conring_size" in str(caught.value)


def test_a_domain_missing_from_a_whole_dump_is_still_enoent(monkeypatch):
    whole_without_1 = WHOLE[:WHOLE.index(b"(XEN) Domain 1")]
    with pytest.raises(xen.HypervisorError) as caught:
        adapter(monkeypatch, whole_without_1).node_pages(1)
    assert caught.value.errno == errno.ENOENT
