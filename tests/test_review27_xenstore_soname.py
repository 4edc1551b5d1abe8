"""The Xen backend's xenstore reader found libxenstore with ``ctypes.util.find_library``, which
runs ``ldconfig -p`` (a subprocess, tens of ms), and imported ctypes with the module: both on
the plugin's place and settle of every VM start on a real host.  It now loads the library by
its soname on first use (ctypes imported then), and asks find_library only where that fails."""
import ctypes
import ctypes.util
import subprocess
import sys
import types

import pytest
from test_xenstore import FakeLibxenstore

from xapi_numa.backends.xenstore import SONAME, XenstoreReader

REAL_CDLL = ctypes.CDLL


def fake_library():
    """A library object as ctypes gives one: functions that take restype and argtypes."""
    fake = FakeLibxenstore()
    return types.SimpleNamespace(xs_open=lambda flags: fake.xs_open(flags), xs_close=lambda h: fake.xs_close(h),
                                 xs_read=lambda *a: fake.xs_read(*a), xs_directory=lambda *a: fake.xs_directory(*a))


@pytest.fixture
def loads(monkeypatch):
    """CDLL answering the fake for the names in ``present`` (libc as itself); what was asked, in order."""
    asked, present = [], set()

    def cdll(name, *args, **kwargs):
        if name is None:
            return REAL_CDLL(None)
        asked.append(name)
        if name not in present:
            raise OSError("{}: cannot open shared object file".format(name))
        return fake_library()

    def find_library(name):
        asked.append("find_library({})".format(name))
        return "libxenstore.so.3.0"

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(ctypes.util, "find_library", find_library)
    return asked, present


def test_the_soname_loads_without_find_library(loads):
    asked, present = loads
    present.add(SONAME)
    reader = XenstoreReader()
    assert asked == []  # nothing loaded before the first read
    assert reader.read("/local/domain/5/name") == "db"
    assert asked == [SONAME]


def test_find_library_only_where_the_soname_does_not_load(loads):
    asked, present = loads
    present.add("libxenstore.so.3.0")
    assert XenstoreReader().directory("/local/domain/0/backend/vbd3/3") == ["768", "832"]
    assert asked == [SONAME, "find_library(xenstore)", "libxenstore.so.3.0"]


def test_no_library_at_all_falls_back_to_the_tools(loads, monkeypatch):
    asked, _ = loads
    monkeypatch.setattr(XenstoreReader, "_tool", staticmethod(lambda tool, path: "db\n"))
    reader = XenstoreReader()
    assert reader.read("/local/domain/5/name") == "db" and reader.read("/local/domain/5/name") == "db"
    assert asked == [SONAME, "find_library(xenstore)", "libxenstore.so.3.0"]  # tried once, not per read


def test_importing_the_reader_imports_no_ctypes():
    code = "import sys, xapi_numa.backends.xenstore; print('ctypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert out.stdout.strip() == "False"
