"""The ``xapi-numa`` command: its parser, assembled from the command groups, and ``main``.

Queries (``topology``, ``vcpus``, ``memory``, ``top``, ``homing --dry-run``)
work on any backend and take ``--json``; ``place`` and friends decide where
VMs go; ``move-memory`` moves a running VM's pages; ``sim ...`` scripts the
simulated host and ``demo`` runs the seed scenario.  Errors print one line
naming the field and what is allowed, and exit non-zero; no traceback reaches
the user (``XAPI_NUMA_DEBUG=1`` shows it).
"""
import argparse
import codecs
import errno
import io
import os
import sys
import traceback
from typing import List, Optional

from xapi_numa import __version__
from xapi_numa.backends.open import BACKEND_SYNTAX
from xapi_numa.cli import backends, common, moves, placing, queries, rebalance, render, sim, vnuma
from xapi_numa.cli.log_lines import warnings_said
from xapi_numa.errors import InvalidArgument, NumaError
from xapi_numa.ops.command_line import Parser, given

GROUPS = (queries, placing, moves, rebalance, sim, backends, vnuma)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="xapi-numa", description="NUMA placement and balancing for Xen/XAPI hosts")
    p.add_argument("--version", action="version", version="xapi-numa {}".format(__version__))
    p.add_argument("--backend", type=given, help="hypervisor backend: {} (default: $XAPI_NUMA_BACKEND or xen)".format(
        BACKEND_SYNTAX))
    p.add_argument("--pool", type=given, help="XenAPI URL of a pool master: topology and vcpus then query every host "
                                  "through its numa plugin, and vnuma --store plans through it; vm-start and "
                                  "vm-placement always go through a pool: this URL or $XAPI_NUMA_POOL_URL")
    p.add_argument("--user", type=given, help="pool user name (or $XAPI_NUMA_POOL_USER)")
    p.add_argument("--ca-file", dest="ca_file", type=given,
                   help="CA certificate (PEM) that signed the pool master's certificate, e.g. its self-signed one")
    p.add_argument("--insecure", action="store_true",
                   help="accept a plain http:// pool URL or an unverified certificate (the password is then exposed)")
    p.add_argument("--password-file", dest="password_file", type=given,
                   help="file holding the pool password, readable by its owner only (or $XAPI_NUMA_POOL_PASSWORD)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in GROUPS:
        group.register(sub)
    return p


# the commands that act through a pool master (the others refuse --pool themselves or work on this host)
POOL_COMMANDS = frozenset({"topology", "vcpus", "vm-start", "vm-placement", "vnuma"})


def check_pool_use(args: argparse.Namespace) -> None:
    """A command that works on this host only refuses --pool rather than quietly act here."""
    if args.pool and args.command not in POOL_COMMANDS:
        raise InvalidArgument("--pool", "{} works on this host only".format(args.command),
                              "--pool with {}; this command without it, in the host's dom0".format(
                                  ", ".join(sorted(POOL_COMMANDS))))


def never_unencodable(stream):
    """``stream``, or the same bytes with characters its encoding lacks written escaped:
    dom0's Python 3.6 under cron or a systemd unit (no LANG) writes ASCII, and one VM
    named with an accent (XenCenter allows it) would stop every table."""
    if stream is None or not hasattr(stream, "buffer") or getattr(stream, "errors", "") == "backslashreplace" \
            or codecs.lookup(stream.encoding or "ascii").name == "utf-8":
        return stream
    stream.flush()
    return io.TextIOWrapper(stream.buffer, encoding=stream.encoding or "ascii", errors="backslashreplace",
                            line_buffering=stream.line_buffering)


class ClosedOutput:
    """Standard output when the process started with none: a write fails as on a closed
    file (GuardedOutput says so in one line); the flush at exit has nothing to do."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass


def said(err: NumaError) -> str:
    """The error's line as this command names its fields: the VM is ``VM`` (as its usage
    writes it) whether it is blank or unknown here, or a host's plugin refused its ``vm``
    argument (the plugin's own failures keep ``vm``, which callers match)."""
    if err.message.startswith("vm: ") and err.code in ("NUMA_UNKNOWN_VM", "NUMA_INVALID_ARGUMENT"):
        return "VM: " + err.message[len("vm: "):]
    return err.message


def main(argv: Optional[List[str]] = None) -> int:
    if sys.stdout is None:  # started with it closed (>&-): said as any output that cannot be written
        sys.stdout = ClosedOutput()
    sys.stdout, sys.stderr = never_unencodable(sys.stdout), never_unencodable(sys.stderr)
    if not isinstance(sys.stdout, common.GuardedOutput):
        sys.stdout = common.GuardedOutput(sys.stdout)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a flag argparse refused (one line said why)
        return done.code if isinstance(done.code, int) else 2
    except NumaError as err:  # --help to an output that cannot be written
        print("xapi-numa: error: {}".format(err.message), file=sys.stderr)
        return 1
    try:
        check_pool_use(args)
        with warnings_said():
            code = args.func(args)
        sys.stdout.flush()  # written now, while a failure can still be said
        return code
    except NumaError as err:
        print("xapi-numa: error: {}".format(render.cell(said(err))), file=sys.stderr)  # names come escaped
        # a host's plugin refusing an argument is the same mistake as this command refusing it
        return 2 if isinstance(err, InvalidArgument) or err.code == "NUMA_INVALID_ARGUMENT" else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (| head): first, it is a ConnectionError too
        return 0
    except ConnectionError as err:  # xapi, or the pool master, went away or stopped answering
        print("xapi-numa: error: no answer from xapi: {}".format(err), file=sys.stderr)
        return 1
    except Exception as err:  # never show a traceback to a user
        if os.environ.get("XAPI_NUMA_DEBUG"):
            traceback.print_exc()
        print("xapi-numa: internal error: {}: {} (set XAPI_NUMA_DEBUG=1 for details)".format(
            type(err).__name__, err), file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
