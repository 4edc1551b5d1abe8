"""The Xen adapter's reads of Xen's domain records (backends/xen_domains), over a fake
``xn_domains`` that pages as getinfolist does: dying domains, gaps in the domids and
more domains than one batch holds (the fake libxenctrl of test_native_c lists two)."""
import uuid

import pytest

from xapi_numa.backends import xen_domains

cffi = pytest.importorskip("cffi")
FFI = cffi.FFI()
FFI.cdef("""struct xn_domain { uint32_t domid; uint32_t flags; uint64_t tot_pages, max_pages, outstanding_pages;
            uint32_t nr_online_vcpus, max_vcpu_id, cpupool; uint8_t handle[16]; };""")
DYING = 1


def uuid_of(domid: int) -> str:
    return str(uuid.UUID(int=domid * 7919 + 1))


class FakeLib:
    """Xen's getinfolist: the domains from ``first`` on, at most ``max`` of them."""
    XN_DOM_DYING = DYING

    def __init__(self, flags) -> None:
        self.flags = flags  # domid -> flags
        self.calls = []

    def xn_domains(self, handle, first, count, out):
        self.calls.append((first, count))
        chosen = [d for d in sorted(self.flags) if d >= first][:count]
        for i, domid in enumerate(chosen):
            out[i].domid, out[i].flags = domid, self.flags[domid]
            out[i].handle = list(uuid.UUID(uuid_of(domid)).bytes)
        return len(chosen)


def check(rc, what):
    return rc


@pytest.fixture(autouse=True)
def batches_of_256(monkeypatch):
    """Batches smaller than a host: the paging is what these tests look at."""
    monkeypatch.setattr(xen_domains, "BATCH", 256)


# 301 domains with gaps, every 97th (but dom0) dying, and one far up
HOST = {d: (DYING if d % 97 == 0 and d else 0) for d in list(range(0, 600, 2)) + [32000]}


def test_uuids_page_past_a_batch_and_leave_out_dying_domains():
    lib = FakeLib(HOST)
    assert xen_domains.uuids(FFI, lib, None, check) == {d: uuid_of(d) for d, f in HOST.items() if not f & DYING}
    assert lib.calls == [(0, 256), (511, 256)]  # the next batch from the last domid read, plus one


def test_records_keep_dying_ones_and_never_more_than_the_limit():
    lib = FakeLib(HOST)
    every = xen_domains.records(FFI, lib, None, check)
    assert [r.domid for r in every] == sorted(HOST) and all(r.uuid == uuid_of(r.domid) for r in every)
    assert len(xen_domains.records(FFI, lib, None, check, limit=300)) == 300  # (a review found 301)
    assert [r.domid for r in xen_domains.records(FFI, lib, None, check, first=597, limit=5)] == [598, 32000]


def test_one_record_is_that_domids_or_none():
    lib = FakeLib(HOST)
    assert xen_domains.one(FFI, lib, None, check, 4).domid == 4
    assert xen_domains.one(FFI, lib, None, check, 5) is None  # the next one up is another domain
    assert xen_domains.one(FFI, lib, None, check, 194).flags & DYING  # dying: the caller decides
    assert lib.calls[-1] == (194, 1)


def test_uuid_text_is_the_uuid_modules():  # (the adapter formats records with core.live_domains.uuid_text)
    for n in (0, 1, 2 ** 128 - 1, 0x0123456789ABCDEF0123456789ABCDEF):
        raw = uuid.UUID(int=n).bytes
        assert xen_domains.uuid_text(raw) == str(uuid.UUID(bytes=raw))


def test_uuids_read_every_byte_of_a_handle_and_leave_out_dying_ones_at_a_batchs_edges():
    """The handles are read as columns of the batch's memory: any byte value, in any of
    a handle's four words, and dying domains first, last and side by side in a batch."""
    flags = {d: 0 for d in range(1, 600)}
    for d in (1, 2, 256, 257, 512, 599):  # the first, the last of a batch and of the list
        flags[d] = DYING
    raws = {d: bytes((d * 31 + k * 67) % 256 for k in range(16)) for d in flags}

    class Lib(FakeLib):
        def xn_domains(self, handle, first, count, out):
            got = super().xn_domains(handle, first, count, out)
            for i in range(got):
                out[i].handle = list(raws[out[i].domid])
            return got

    live = xen_domains.uuids(FFI, Lib(flags), None, check)
    assert live == {d: str(uuid.UUID(bytes=raws[d])) for d, f in flags.items() if not f}


def test_a_thousand_domains_are_listed_in_one_call_by_default(monkeypatch):
    monkeypatch.undo()  # (the module's own batch)
    lib = FakeLib({d: 0 for d in range(1000)})
    assert len(xen_domains.uuids(FFI, lib, None, check)) == 1000 and lib.calls == [(0, xen_domains.BATCH)]
