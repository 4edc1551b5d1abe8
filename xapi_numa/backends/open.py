"""The composition root: open the hypervisor backend a user named.

``xen`` (the default) is real Xen in dom0 over libxenuma; ``sim:PATH`` is the
simulated host stored at PATH.  Entry points (CLI, plugin, daemon) call this;
nothing below them opens a backend.
"""
import os
from typing import Optional

from xapi_numa.errors import BackendUnavailable, InvalidArgument
from xapi_numa.ports.hypervisor import Hypervisor

BACKEND_SYNTAX = "xen, or sim:PATH for a simulated host stored at PATH"


def backend_spec(explicit: Optional[str] = None) -> str:
    """Which backend to use: the flag, else $XAPI_NUMA_BACKEND, else ``xen``."""
    return explicit or os.environ.get("XAPI_NUMA_BACKEND") or "xen"


def sim_path(spec: str) -> Optional[str]:
    """The state file of a ``sim:PATH`` spec, or None for another backend."""
    return spec[4:] if spec.startswith("sim:") else None


def checked_spec(explicit: Optional[str] = None) -> str:
    """:func:`backend_spec`, refused (InvalidArgument, field ``backend``) unless it names a
    backend: ``xen``, or ``sim:`` with a path."""
    spec = backend_spec(explicit)
    if spec == "sim:":
        raise InvalidArgument("backend", "sim: needs a path", BACKEND_SYNTAX)
    if spec != "xen" and sim_path(spec) is None:
        raise InvalidArgument("backend", "unknown backend {!r}".format(spec), BACKEND_SYNTAX)
    return spec


def named_by(explicit: Optional[str]) -> str:
    """What named the backend, for an error: the flag, or the environment variable."""
    return "--backend" if explicit or not os.environ.get("XAPI_NUMA_BACKEND") else "$XAPI_NUMA_BACKEND"


def flag_refusal(explicit: Optional[str]) -> Optional[str]:
    """The error line of a backend that names none, as a refused flag (what named it, why,
    what is allowed: the daemons exit 2 on it, which their units do not retry); None if
    it names one."""
    try:
        checked_spec(explicit)
    except InvalidArgument as err:
        return "{}: {} (allowed: {})".format(named_by(explicit), err.detail, err.allowed)
    return None


def open_hypervisor(spec: Optional[str] = None) -> Hypervisor:
    """Open the backend named by ``spec`` (see :func:`backend_spec`)."""
    spec = checked_spec(spec)
    path = sim_path(spec)
    if path is not None:
        from xapi_numa.backends.sim.backend import SimHypervisor

        return SimHypervisor(path)
    return _open_xen()


def _open_xen() -> Hypervisor:
    from xapi_numa.backends.libxenuma_abi import NotBuilt

    try:
        from xapi_numa.backends.xen import XenHypervisor
    except NotBuilt:
        raise BackendUnavailable(
            "the Xen backend needs libxenuma, xapi-numa's native libxc extension, which is not "
            "built in this installation; use --backend sim:PATH for a simulated host"
        ) from None
    except ImportError as err:  # there but not loadable (a dom0's missing libxenctrl): say which file and why
        raise BackendUnavailable("the Xen backend cannot load libxenuma, xapi-numa's native libxc "
                                 "extension: {}".format(err)) from None
    return XenHypervisor()
