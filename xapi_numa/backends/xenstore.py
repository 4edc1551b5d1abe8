"""Reading xenstore from dom0: domain names and the toolstacks' device records.

Through libxenstore with ctypes (no compiler needed on the host, no
subprocess that can time out under load), falling back to ``xenstore-read``
where the library cannot be loaded.  A key that cannot be read *now* is
reported as such (None, or OSError where the caller must not guess), never
replaced by a made-up value.
"""
import ctypes
import ctypes.util
import errno
from typing import Optional


class XenstoreReader:
    """Reads xenstore keys through libxenstore (ctypes: no compiler needed, no
    subprocess to time out), falling back to ``xenstore-read`` where the library
    cannot be loaded.  None when a key cannot be read now."""

    def __init__(self) -> None:
        self._lib = None
        self._handle = None
        try:
            self._lib = ctypes.CDLL(ctypes.util.find_library("xenstore") or "libxenstore.so.4", use_errno=True)
            self._lib.xs_open.restype = ctypes.c_void_p
            self._lib.xs_open.argtypes = [ctypes.c_ulong]
            self._lib.xs_read.restype = ctypes.c_void_p
            self._lib.xs_read.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p,
                                          ctypes.POINTER(ctypes.c_uint)]
            self._handle = self._lib.xs_open(0)
        except (OSError, AttributeError):
            self._lib = None
        self._free = ctypes.CDLL(None).free
        self._free.argtypes = [ctypes.c_void_p]

    def _raw(self, path: str) -> Optional[str]:
        """The value ("" for a directory), None if the key does not exist; raises
        OSError if xenstore cannot be asked."""
        if self._lib is not None and self._handle:
            length = ctypes.c_uint(0)
            ctypes.set_errno(0)
            value = self._lib.xs_read(self._handle, 0, path.encode(), ctypes.byref(length))
            if not value:
                err = ctypes.get_errno()
                if err in (0, errno.ENOENT):
                    return None
                raise OSError(err, "reading {} from xenstore".format(path))
            try:
                return ctypes.string_at(value, length.value).decode("utf-8", "replace")
            finally:
                self._free(value)
        return self._read_with_tool(path)

    def read(self, path: str) -> Optional[str]:
        """A key's value; None when it is missing, empty or cannot be read now."""
        try:
            return self._raw(path) or None
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        """Raises OSError when xenstore cannot be asked (the caller must not guess)."""
        return self._raw(path) is not None

    @staticmethod
    def _read_with_tool(path: str) -> Optional[str]:
        import subprocess

        try:
            out = subprocess.run(["xenstore-read", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True, timeout=5)
        except subprocess.TimeoutExpired:
            raise OSError(errno.ETIMEDOUT, "xenstore-read {} timed out".format(path)) from None
        return out.stdout.strip() if out.returncode == 0 else None
