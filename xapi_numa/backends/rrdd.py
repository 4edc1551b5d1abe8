"""xcp-rrdd, xapi's metrics daemon: its plugin protocol v2 file, and registering with it.

The v2 file (xen-api's rrd-transport library, ``rrd_protocol_v2``), all
integers and doubles big-endian::

    "DATASOURCES"              11 bytes
    data checksum              uint32, CRC-32 of timestamp + values
    metadata checksum          uint32, CRC-32 of the metadata
    number of data sources     uint32
    timestamp                  uint64, whole seconds of Unix time (its reader and
                               writer use 64-bit integers; the design note's
                               "double" is not what xcp-rrdd parses)
    values                     n x 8 bytes: int64 or double, by the metadata's value_type
    metadata length            uint32
    metadata                   JSON {"datasources": {name: {description, owner,
                               value_type, type, default, units, min, max}, ...}}

Values follow the metadata's order.  Several VMs publish the same name, so the
``datasources`` object repeats names (xcp-rrdd reads it as an ordered list of
pairs, as its own per-VM plugins write it); the owner tells them apart.  The
file is written values first and header last, so a reader that catches it
half-written sees a bad checksum and waits for the next reading.

Registration (xapi-idl's ``Plugin.Local.register uid info protocol``) is an
XML-RPC call over xcp-rrdd's Unix socket; it answers the seconds until its next
reading, and ``Plugin.get_path`` says where the file goes (under /dev/shm).
"""
import http.client
import json
import math
import os
import socket
import struct
import xmlrpc.client
import zlib
from typing import Any, Iterable, Sequence

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


def encode(sources: Sequence[DataSource], timestamp: float) -> bytes:
    """One v2 payload: header, checksums, count, timestamp, values, metadata."""
    meta = metadata(sources)
    data = struct.pack(">Q", int(timestamp)) + b"".join(_value(s) for s in sources)
    head = HEADER + struct.pack(">III", zlib.crc32(data) & 0xFFFFFFFF, zlib.crc32(meta) & 0xFFFFFFFF,
                                len(sources))
    return head + data + struct.pack(">I", len(meta)) + meta


def write_file(path: str, payload: bytes) -> None:
    """Write a payload where xcp-rrdd reads it: the body, then the header over it."""
    split = len(HEADER) + 12  # header string and the three uint32: written last
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, payload[split:], split)
        os.pwrite(fd, payload[:split], 0)
        # a shorter payload than last time leaves stale bytes past its end: cut them
        os.ftruncate(fd, len(payload))
    finally:
        os.close(fd)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=RPC_TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(RPC_TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host):
        return _UnixConnection(self._path)


class Rrdd:
    """xcp-rrdd's plugin calls, over its Unix socket."""

    def __init__(self, socket_path: str = RRDD_SOCKET) -> None:
        self._socket = socket_path
        self._proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=_UnixTransport(socket_path),
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
