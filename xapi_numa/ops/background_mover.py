"""Starting a memory mover in the background: a detached ``xapi-numa move-memory``
that inherits the VM's mover lock (the plugin's and xapi-numad's moves; the
claim is :func:`xapi_numa.ops.move_memory.claim_and_start`)."""
import os
import time
from typing import FrozenSet, List, Optional

from xapi_numa.core.cpuset import format_ids
from xapi_numa.state.moves import MoverLock


def start_background(domid: int, to: int, db_path: str, lock: MoverLock, max_bytes: Optional[int] = None,
                     rate: Optional[str] = None, skip: int = 0, keep_affinity: bool = False,
                     vnode: Optional[int] = None, guest_cpus: Optional[FrozenSet[int]] = None) -> int:
    """Run ``xapi-numa move-memory`` detached: isolated (``-I``, from ``/``), in its own
    session with no stdio (xapi reads the plugin's stdout to EOF), and where systemd
    runs, in a scope of its own, so that a toolstack restart that stops xapi's
    children does not stop a move in flight.  The child inherits ``lock`` (the VM's
    mover lock, taken when the VM was claimed).  Returns its pid."""
    import shutil
    import subprocess
    import sys

    # -I: neither the caller's directory nor its environment decides what gets imported;
    # the package is found where this one was loaded from.  -B: no bytecode written beside
    # it (the launchers promise that of /opt/xapi-numa)
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    bootstrap = ("import sys; sys.path.insert(0, {!r}); from xapi_numa.cli.main import main; "
                 "sys.exit(main(sys.argv[1:]))".format(home))
    cmd = [sys.executable, "-I", "-B", "-c", bootstrap, "move-memory", str(domid), "--to", str(to), "--json",
           "--ledger", db_path, "--lock-fd", str(lock.fd)]
    if max_bytes is not None:
        cmd += ["--max", str(max_bytes)]
    if rate is not None:
        cmd += ["--rate", rate]
    if skip:
        cmd += ["--skip", str(skip)]
    if keep_affinity:
        cmd += ["--keep-affinity"]
    if vnode is not None:
        cmd += ["--vnode", str(vnode)]
    if guest_cpus is not None:  # the host's guest mask, as the claimer read it from xapi
        cmd += ["--guest-cpus", format_ids(guest_cpus)]
    if shutil.which("systemd-run") and os.path.isdir("/run/systemd/system"):
        # a scope keeps the child our own process (it inherits the lock) but outside xapi's cgroup
        cmd = scope_command(domid, _systemd_version()) + cmd
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True, pass_fds=(lock.fd,), cwd="/")
    return child.pid


def scope_command(domid: int, systemd_version: int) -> List[str]:
    """systemd-run's words for a mover's scope.  ``--collect`` (unload it even if the move
    failed) came with systemd 236: XenServer 8's systemd 219 refuses it and runs nothing."""
    return (["systemd-run", "--quiet", "--scope"] + (["--collect"] if systemd_version >= 236 else [])
            + ["--unit", "xapi-numa-move-{}-{}".format(domid, int(time.time()))])


def _systemd_version() -> int:
    """The first line of ``systemd-run --version`` says ``systemd 219`` (0 if it cannot be read)."""
    import subprocess
    try:
        out = subprocess.run(["systemd-run", "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    words = (out.splitlines() or [""])[0].split()
    return int(words[1]) if len(words) > 1 and words[0] == "systemd" and words[1].isdigit() else 0
