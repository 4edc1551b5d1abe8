"""The xenstore reader (xapi_numa/backends/xenstore.py) through its library path, against a
fake libxenstore that allocates as the real one does: a value in one malloc'd block, a
directory as one block holding the pointer array and the strings (freed once, by the caller)."""
import ctypes
import ctypes.util
import errno

import pytest

from xapi_numa.backends.xenstore import XenstoreReader

LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
LIBC.malloc.restype = ctypes.c_void_p
LIBC.malloc.argtypes = [ctypes.c_size_t]

STORE = {
    "/local/domain/0/backend/vbd3": ["3"],
    "/local/domain/0/backend/vbd3/3": ["768", "832"],
    "/local/domain/0/backend/vbd3/3/768/kthread-pid": "700",
    "/local/domain/0/backend/vbd3/3/832/kthread-pid": "701",
    "/local/domain/5/name": "db",
}


class FakeLibxenstore:
    """Answers from STORE; a handle in ``broken`` fails as a dead connection does, a path in
    ``denied`` as xenstored's own EACCES does."""

    def __init__(self):
        self.opened, self.closed, self.broken, self.denied = [], [], set(), set()

    def xs_open(self, flags):
        self.opened.append(len(self.opened) + 1)
        return self.opened[-1]

    def xs_close(self, handle):
        self.closed.append(handle)

    def _fails(self, handle, path):
        if handle in self.broken or path in self.denied:
            ctypes.set_errno(errno.ECONNRESET if handle in self.broken else errno.EACCES)
            return True
        if path not in STORE:
            ctypes.set_errno(errno.ENOENT)
            return True
        return False

    def xs_read(self, handle, transaction, path, length):
        path = path.decode()
        if self._fails(handle, path):
            return None
        value = STORE[path].encode() if isinstance(STORE[path], str) else b""
        block = LIBC.malloc(len(value) + 1)
        ctypes.memmove(block, value + b"\0", len(value) + 1)
        length._obj.value = len(value)
        return block

    def xs_directory(self, handle, transaction, path, count):
        path = path.decode()
        if self._fails(handle, path):
            return ctypes.POINTER(ctypes.c_char_p)()
        names = [n.encode() + b"\0" for n in STORE[path]]
        pointers = ctypes.sizeof(ctypes.c_void_p) * len(names)
        block = LIBC.malloc(pointers + sum(len(n) for n in names))
        at = block + pointers
        for i, name in enumerate(names):   # the array first, then the strings, in the one block
            ctypes.memmove(at, name, len(name))
            ctypes.c_void_p.from_address(block + i * ctypes.sizeof(ctypes.c_void_p)).value = at
            at += len(name)
        count._obj.value = len(names)
        return ctypes.cast(block, ctypes.POINTER(ctypes.c_char_p))


@pytest.fixture
def reader():
    r = XenstoreReader()
    r._lib = FakeLibxenstore()
    r._handle = r._lib.xs_open(0)
    return r


def test_values_and_directories_come_through_the_library(reader):
    assert reader.read("/local/domain/5/name") == "db"
    assert reader.read("/local/domain/6/name") is None
    assert reader.directory("/local/domain/0/backend/vbd3/3") == ["768", "832"]
    assert reader.directory("/local/domain/0/backend/vbd3/9") is None
    assert reader.tapdisk_pids() == {700: {3}, 701: {3}}
    assert reader._lib.opened == [1] and reader._lib.closed == []


def test_a_broken_connection_is_opened_again_once(reader):
    reader._lib.broken.add(1)          # xenstored restarted: handle 1 is dead for good
    assert reader.read("/local/domain/5/name") == "db"
    assert reader.directory("/local/domain/0/backend/vbd3") == ["3"]
    assert reader._lib.opened == [1, 2] and reader._lib.closed == [1]
    reader._lib.broken.add(2)
    reader._lib.broken.add(3)          # and stays down: an error, not a guess
    with pytest.raises(OSError):
        reader.directory("/local/domain/0/backend/vbd3")


def test_an_answer_from_xenstored_is_not_a_broken_connection(reader):
    reader._lib.denied.add("/local/domain/0/backend/vbd3/3/832/kthread-pid")
    assert reader.read("/local/domain/0/backend/vbd3/3/832/kthread-pid") is None   # read(): cannot say now
    with pytest.raises(OSError) as info:
        reader.tapdisk_pids()          # a record it cannot read is not taken for a missing one
    assert info.value.errno == errno.EACCES
    assert reader._lib.opened == [1]   # nothing reopened
