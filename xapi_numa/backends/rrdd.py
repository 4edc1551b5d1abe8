"""xcp-rrdd, xapi's metrics daemon: its plugin protocol v2 file, and registering with it.

The v2 file (xen-api's rrd-transport library, ``rrd_protocol_v2``), all
integers and doubles big-endian::

    "DATASOURCES"              11 bytes
    data checksum              uint32, CRC-32 of timestamp + values
    metadata checksum          uint32, CRC-32 of the metadata
    number of data sources     uint32
    timestamp                  8 bytes: a double of Unix time since xen-api
                               v24.40.0 (CA-391651); before, whole seconds as a
                               uint64: :func:`timestamp_format` asks which
                               xcp-rrdd is installed
    values                     n x 8 bytes: int64 or double, by the metadata's value_type
    metadata length            uint32
    metadata                   JSON {"datasources": {name: {description, owner,
                               value_type, type, default, units, min, max}, ...}}

Values follow the metadata's order.  Several VMs publish the same name, so the
``datasources`` object repeats names (xcp-rrdd reads it as an ordered list of
pairs, as its own per-VM plugins write it); the owner tells them apart.  The
file is written values first and header last, so a reader that catches it
half-written sees a bad checksum and waits for the next reading.

xcp-rrdd opens and maps the file when the plugin first registers, and reads
within that mapping from then on (a file must not change its size): it must
exist, whole, before the first registration, and it is made with room to
grow (:class:`PluginFile`); one that outgrows it is made anew, bigger, and
the plugin registers again so that xcp-rrdd maps the new one.

Registration (xapi-idl's ``Plugin.Local.register uid info protocol``) is an
XML-RPC call over xcp-rrdd's Unix socket; it answers the seconds until its next
reading, and ``Plugin.get_path`` says where the file goes (under /dev/shm).
"""
import http.client
import json
import math
import os
import struct
import xmlrpc.client
import zlib
from typing import Any, Iterable, Optional, Sequence, Tuple

from xapi_numa.backends.rpc_transport import UnixTransport
from xapi_numa.errors import BackendUnavailable

# A data source is any value with the fields of xapi_numa.ops.metrics.DataSource (name,
# owner, value, value_type, type, units, description, minimum, maximum, default); not
# imported from there, since adapters sit below the use cases.
DataSource = Any

HEADER = b"DATASOURCES"
RRDD_SOCKET = "/var/lib/xcp/xcp-rrdd"
FREQUENCY = "Five_Seconds"  # the only sampling frequency xcp-rrdd has
FREQUENCY_SECONDS = 5.0
PROTOCOL = "V2"
RPC_TIMEOUT = 10.0


def _limit(x: float) -> str:
    """min/max as xcp-rrdd parses them (OCaml float_of_string: "inf", "-inf", "0.00")."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "{:.2f}".format(x)


def metadata(sources: Iterable[DataSource]) -> bytes:
    """The metadata JSON, names repeated per owner, in the values' order."""
    entries = []
    for s in sources:
        fields = {"description": s.description, "owner": s.owner, "value_type": s.value_type, "type": s.type,
                  "default": "true" if s.default else "false", "units": s.units,
                  "min": _limit(s.minimum), "max": _limit(s.maximum)}
        entries.append(json.dumps(s.name) + ":" + json.dumps(fields, sort_keys=True))
    return ('{"datasources":{' + ",".join(entries) + "}}").encode("utf-8")


def _value(s: DataSource) -> bytes:
    if s.value_type == "int64":
        return struct.pack(">q", int(s.value))
    return struct.pack(">d", float(s.value))


def encode(sources: Sequence[DataSource], timestamp: float, stamp: str = "double") -> bytes:
    """One v2 payload: header, checksums, count, timestamp, values, metadata.  ``stamp``:
    the timestamp as a double, or as whole seconds (``"seconds"``, xcp-rrdd before v24.40)."""
    meta = metadata(sources)
    packed = struct.pack(">d", timestamp) if stamp == "double" else struct.pack(">Q", int(timestamp))
    data = packed + b"".join(_value(s) for s in sources)
    head = HEADER + struct.pack(">III", zlib.crc32(data) & 0xFFFFFFFF, zlib.crc32(meta) & 0xFFFFFFFF,
                                len(sources))
    return head + data + struct.pack(">I", len(meta)) + meta


DOUBLE_SINCE = (24, 40)  # xen-api v24.40.0 (CA-391651): the timestamp became a double
PAGE = 4096


def timestamp_format(installed: Optional[Tuple[int, int]]) -> str:
    """``"double"``, or ``"seconds"`` for an xcp-rrdd older than v24.40 (``installed``:
    its version, None when unknown: the current protocol)."""
    return "seconds" if installed is not None and installed < DOUBLE_SINCE else "double"


def installed_version() -> Optional[Tuple[int, int]]:
    """(major, minor) of the xcp-rrdd package (xapi-core's where it has none), from rpm."""
    import subprocess
    for package in ("xcp-rrdd", "xapi-core"):
        try:
            out = subprocess.run(["rpm", "-q", "--qf", "%{VERSION}", package], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        parts = out.stdout.strip().split(".")
        if out.returncode == 0 and len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return int(parts[0]), int(parts[1])
    return None


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class PluginFile:
    """The file xcp-rrdd maps: made whole, with room to grow, and written in place."""

    SPLIT = len(HEADER) + 12  # the header string and its three uint32: written last

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0  # the size xcp-rrdd maps; 0 until made

    def write(self, payload: bytes) -> bool:
        """Write one payload; True if the file was made anew (the first time, or bigger):
        xcp-rrdd maps it only when the plugin registers, so register again then."""
        if len(payload) > self.size or not os.path.exists(self.path):
            self.size = max(PAGE, -(-2 * len(payload) // PAGE) * PAGE)  # twice the payload, whole pages
            tmp = self.path + ".tmp"  # (xcp-rrdd's discovery passes over *.tmp)
            try:
                with open(tmp, "wb") as f:
                    f.write(payload + bytes(self.size - len(payload)))
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
            except OSError:
                _remove_quietly(tmp)  # a refusal leaves nothing behind (a full disk, a directory there)
                raise
            return True
        fd = os.open(self.path, os.O_RDWR)
        try:  # the body, zeros over what a longer payload left, then the header
            os.pwrite(fd, payload[self.SPLIT:] + bytes(self.size - len(payload)), self.SPLIT)
            os.pwrite(fd, payload[:self.SPLIT], 0)
        finally:
            os.close(fd)
        return False


class Rrdd:
    """xcp-rrdd's plugin calls, over its Unix socket."""

    def __init__(self, socket_path: str = RRDD_SOCKET) -> None:
        self._socket = socket_path
        self._proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=UnixTransport(socket_path, RPC_TIMEOUT),
                                                allow_none=True)

    def _call(self, method: str, params: dict):
        try:
            result = getattr(self._proxy, method)(params)
        except (OSError, http.client.HTTPException, xmlrpc.client.Error) as err:
            raise BackendUnavailable("xcp-rrdd at {} did not answer {}: {}".format(self._socket, method, err)) from None
        if not isinstance(result, dict) or result.get("Status") != "Success":
            detail = result.get("ErrorDescription") if isinstance(result, dict) else result
            raise BackendUnavailable("xcp-rrdd refused {}: {}".format(method, detail))
        return result.get("Value")

    def path(self, uid: str) -> str:
        """Where this plugin's file goes."""
        return str(self._call("Plugin.get_path", {"uid": uid}))

    def register(self, uid: str) -> float:
        """Register (again: it is idempotent) as a v2 plugin; seconds until the next reading."""
        answer = self._call("Plugin.Local.register", {"uid": uid, "info": FREQUENCY, "protocol": PROTOCOL})
        try:
            return float(answer)
        except (TypeError, ValueError):
            raise BackendUnavailable("xcp-rrdd answered Plugin.Local.register with {!r}, not the seconds "
                                     "until the next reading".format(answer)) from None

    def deregister(self, uid: str) -> None:
        self._call("Plugin.Local.deregister", {"uid": uid})
