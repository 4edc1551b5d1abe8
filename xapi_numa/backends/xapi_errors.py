"""XenAPI failures as values: :class:`XapiError` carries xapi's ErrorDescription, with
the human message of a numa plugin's own failure (as the plugin boundary lays it out)
rather than its raw parameters."""
from typing import List, Optional

from xapi_numa.errors import NumaError


class XapiError(NumaError):
    """A XenAPI call failed; ``code`` and ``params`` are xapi's ErrorDescription."""

    code = "XENAPI_ERROR"

    def __init__(self, details) -> None:
        details = [str(d) for d in details] or ["INTERNAL_ERROR"]
        super().__init__(_plugin_message(details) or "xapi refused: {}".format(" ".join(details)), details[1:])
        self.code = details[0]


def _plugin_message(details: List[str]) -> Optional[str]:
    """The human message of a numa plugin's failure (a host's NumaError, as the plugin
    boundary lays it out), or None for xapi's own failures."""
    code, params = details[0], details[1:]
    if not code.startswith("NUMA_") or not params:
        return None
    if code == "NUMA_INVALID_ARGUMENT" and len(params) >= 2:
        return params[1]  # [field, "field: message (allowed: ...)"]
    if code == "NUMA_UNKNOWN_VM":
        return "no such VM or domain: {}".format(params[0])
    if code == "NUMA_NOT_RUNNING":
        return params[2] if len(params) >= 3 else "VM {} is not running".format(params[0])
    if code == "NUMA_NOT_MOVABLE" and len(params) >= 2:
        return "the memory of VM {} cannot be moved: {}".format(params[0], params[1])
    if code == "NUMA_HYPERVISOR_ERROR" and len(params) >= 2:
        return params[1]  # [errno name, message]
    return params[0]  # [message, *params]
