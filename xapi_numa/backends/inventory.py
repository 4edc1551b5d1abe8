"""This host's identity, as xapi's inventory file gives it to every dom0 script.

A dom0 has ``/etc/xensource-inventory`` (``/etc/xcp/inventory`` on some builds):
``KEY='value'`` lines, among them ``INSTALLATION_UUID``, the UUID of this
host's xapi object.  A plugin is called with its caller's session, which
belongs to the pool master, so the file is how it knows which host it runs on.
``$XAPI_NUMA_INVENTORY`` names another file (tests: one per loopback host).
Off a dom0 there is no file and no identity (None).
"""
import os
from typing import Dict, Mapping, Optional

INVENTORY_PATHS = ("/etc/xensource-inventory", "/etc/xcp/inventory")
HOST_UUID_KEY = "INSTALLATION_UUID"


def parse_inventory(text: str) -> Dict[str, str]:
    """The ``KEY='value'`` pairs of an inventory file (quotes stripped; other lines ignored)."""
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            pairs[key.strip()] = value.strip().strip("'\"")
    return pairs


def local_host_uuid(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """This host's UUID, or None where no inventory file is readable."""
    override = environ.get("XAPI_NUMA_INVENTORY")
    for path in (override,) if override else INVENTORY_PATHS:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                uuid = parse_inventory(f.read()).get(HOST_UUID_KEY)
        except OSError:
            continue
        if uuid:
            return uuid.lower()
    return None
