"""Reading xenstore from dom0: domain names and the toolstacks' device records.

Through libxenstore with ctypes (no compiler needed on the host, no
subprocess that can time out under load), falling back to ``xenstore-read``
and ``xenstore-list`` where the library cannot be loaded.  The library is loaded
on first use, by its soname (:func:`load_library`: ``ctypes.util.find_library`` runs
``ldconfig -p``, a subprocess of tens of ms, in the plugin's place and settle of every
VM start), and ctypes is imported only then.  A key that cannot
be read *now* is reported as such (None, or OSError where the caller must not
guess), never replaced by a made-up value.

Device records read here: the tapdisk process serving each of a guest's
disks on XenServer/XCP-ng.  blktap3's tapback writes its pid as
``/local/domain/0/backend/vbd3/<frontend domid>/<device id>/kthread-pid``
once the disk is connected (xenopsd reads the same key for disk QoS and
statistics).
"""
import errno
from typing import Dict, FrozenSet, Iterable, List, Optional, Set

from xapi_numa.core.numbers import is_decimal

VBD3_BACKEND = "/local/domain/0/backend/vbd3"
# errors xenstored itself answers with (the connection works): never a reason to reconnect
ANSWERS_FROM_XENSTORED = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.E2BIG, errno.ENOSPC,
                                    errno.EEXIST, errno.EISDIR, errno.EAGAIN, errno.EBUSY})


# libxenstore's soname since Xen 4.14 (tools/libs/store: MAJOR 4), so Xen 4.17's (XenServer 8, XCP-ng 8.3)
SONAME = "libxenstore.so.4"


def load_library():
    """libxenstore, by its soname (a dlopen, nothing more); only where that fails, by
    ``ctypes.util.find_library``, which runs ``ldconfig -p``.  Raises OSError where neither loads."""
    import ctypes  # on first use only (see the module)
    try:
        return ctypes.CDLL(SONAME, use_errno=True)
    except OSError:
        import ctypes.util
        found = ctypes.util.find_library("xenstore")
        if found is None or found == SONAME:
            raise
        return ctypes.CDLL(found, use_errno=True)


def _is_id(text: str) -> bool:
    """A domid or pid as the toolstack writes it: ASCII digits, not absurdly many."""
    return is_decimal(text) and len(text) <= 10


class XenstoreReader:
    """Reads xenstore keys through libxenstore (ctypes: no compiler needed, no
    subprocess to time out), falling back to ``xenstore-read`` where the library
    cannot be loaded.  None when a key cannot be read now."""

    def __init__(self) -> None:
        self._lib = None
        self._handle = None
        self._free = None
        self._loaded = False  # the library is loaded on first use (:meth:`_connected`)

    def _load(self) -> None:
        import ctypes  # on first use only (see the module)
        self._loaded = True
        try:
            lib = load_library()
            lib.xs_open.restype = ctypes.c_void_p
            lib.xs_open.argtypes = [ctypes.c_ulong]
            lib.xs_read.restype = ctypes.c_void_p
            lib.xs_read.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]
            lib.xs_directory.restype = ctypes.POINTER(ctypes.c_char_p)
            lib.xs_directory.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p,
                                         ctypes.POINTER(ctypes.c_uint)]
            lib.xs_close.restype = None
            lib.xs_close.argtypes = [ctypes.c_void_p]
            self._handle = lib.xs_open(0)
            self._lib = lib
        except (OSError, AttributeError):
            self._lib = None

    def _release(self, block) -> None:
        """Free a block libxenstore returned (the caller's to free, once)."""
        import ctypes
        if self._free is None:
            self._free = ctypes.CDLL(None).free
            self._free.argtypes = [ctypes.c_void_p]
        self._free(ctypes.cast(block, ctypes.c_void_p))

    def _library_call(self, what: str, call):
        """``call(handle)``'s non-NULL result, None for a missing key; raises OSError
        otherwise.  A connection that broke (xenstored restarted or live-updated:
        libxenstore never reconnects by itself) is opened afresh and asked once more."""
        import ctypes
        for attempt in (1, 2):
            ctypes.set_errno(0)
            result = call(self._handle)
            if result:
                return result
            err = ctypes.get_errno()
            if err in (0, errno.ENOENT):
                return None
            if attempt == 1 and err not in ANSWERS_FROM_XENSTORED and self._reopen():
                continue
            raise OSError(err, "{} in xenstore".format(what))
        return None  # not reached

    def _reopen(self) -> bool:
        if self._handle:
            self._lib.xs_close(self._handle)
        self._handle = self._lib.xs_open(0)
        return bool(self._handle)

    def _connected(self) -> bool:
        """Through the library (loaded on first use; opened again if an earlier try failed), or not at all."""
        if self._lib is None and not self._loaded:
            self._load()
        return self._lib is not None and bool(self._handle or self._reopen())

    def _raw(self, path: str) -> Optional[str]:
        """The value ("" for a directory), None if the key does not exist; raises
        OSError if xenstore cannot be asked."""
        if self._connected():
            import ctypes
            return self._ask("reading", self._lib.xs_read, path,
                             lambda value, length: ctypes.string_at(value, length).decode("utf-8", "replace"))
        return self._read_with_tool(path)

    def _ask(self, what: str, function, path: str, decode):
        """``function(handle, no transaction, path, &size)`` through :meth:`_library_call`,
        its result decoded and freed: libxenstore returns one malloc'd block (a value, or
        a directory's pointer array with its strings), the caller's to free once."""
        import ctypes
        size = ctypes.c_uint(0)
        result = self._library_call("{} {}".format(what, path),
                                    lambda h: function(h, 0, path.encode(), ctypes.byref(size)))
        if result is None:
            return None
        try:
            return decode(result, size.value)
        finally:
            self._release(result)

    def read(self, path: str) -> Optional[str]:
        """A key's value; None when it is missing, empty or cannot be read now."""
        try:
            return self._raw(path) or None
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        """Raises OSError when xenstore cannot be asked (the caller must not guess)."""
        return self._raw(path) is not None

    def directory(self, path: str) -> Optional[List[str]]:
        """The names under a key, None if the key does not exist; raises OSError
        if xenstore cannot be asked."""
        if self._connected():
            return self._ask("listing", self._lib.xs_directory, path,
                             lambda names, count: [names[i].decode("utf-8", "replace") for i in range(count)])
        return self._list_with_tool(path)

    def tapdisk_pids(self, domids: Optional[Iterable[int]] = None) -> Dict[int, FrozenSet[int]]:
        """pid -> the guests (domids) whose disks that tapdisk serves, from blktap3's
        ``kthread-pid`` keys; of these guests only, if given.  Disks not yet
        connected have no key and are not listed; dom0's own disks are listed
        under domid 0."""
        if domids is None:
            domids = [int(d) for d in self.directory(VBD3_BACKEND) or () if _is_id(d)]
        served: Dict[int, Set[int]] = {}
        for domid in domids:
            for device in self.directory("{}/{}".format(VBD3_BACKEND, domid)) or ():
                # _raw, not read: a key that cannot be read now must not pass for a missing one (a
                # tapdisk shared with a guest whose key failed would look like one guest's alone)
                pid = (self._raw("{}/{}/{}/kthread-pid".format(VBD3_BACKEND, domid, device)) or "").strip()
                if _is_id(pid):
                    served.setdefault(int(pid), set()).add(domid)
        return {pid: frozenset(guests) for pid, guests in served.items()}

    @staticmethod
    def _read_with_tool(path: str) -> Optional[str]:
        out = XenstoreReader._tool("xenstore-read", path)
        return out.strip() if out is not None else None

    @staticmethod
    def _list_with_tool(path: str) -> Optional[List[str]]:
        out = XenstoreReader._tool("xenstore-list", path)
        return out.split() if out is not None else None

    @staticmethod
    def _tool(tool: str, path: str) -> Optional[str]:
        """A xenstore tool's output, None if it failed (a missing key)."""
        import subprocess

        try:
            out = subprocess.run([tool, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True, timeout=5)
        except subprocess.TimeoutExpired:
            raise OSError(errno.ETIMEDOUT, "{} {} timed out".format(tool, path)) from None
        return out.stdout if out.returncode == 0 else None
