"""What every command-line entry point shares (``xapi-numa``, ``xapi-numad``,
``xapi-numa-rrdd``): a parser whose refusals are one line naming the flag, as
ours are, and the type of a flag whose text must be given.

A blank value was taken for "not given": ``--pool ""`` (an unset ``$URL``)
quietly acted on this host, ``--backend ""`` opened Xen, ``--ledger ""`` the
default database."""
import argparse

from xapi_numa.errors import MAX_ECHO, cut


class Parser(argparse.ArgumentParser):
    """argparse, but its own errors name the field like ours do (exit 2, one line)."""

    def error(self, message: str) -> None:
        # argparse quotes what was typed ("unrecognized arguments: ..."): never a page of it
        self.exit(2, "{}: error: {} (see {} --help)\n".format(self.prog, cut(message, 2 * MAX_ECHO), self.prog))

    def parse_known_args(self, args=None, namespace=None):
        known, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:  # a command's own: its --help is the one that lists its flags
            self.error("unrecognized arguments: {}".format(" ".join(extras)))
        return known, extras


def given(text: str) -> str:
    """For a flag whose value is text: anything but blank (argparse names the flag)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("blank (give a value, or leave the flag out)")
    return text
