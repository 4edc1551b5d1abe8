"""What every command-line entry point shares (``xapi-numa``, ``xapi-numad``,
``xapi-numa-rrdd``): a parser whose refusals are one line naming the flag, as
ours are, and the type of a flag whose text must be given.

A blank value was taken for "not given": ``--pool ""`` (an unset ``$URL``)
quietly acted on this host, ``--backend ""`` opened Xen, ``--ledger ""`` the
default database."""
import argparse
import sys
from typing import List, Sequence

from xapi_numa.errors import MAX_ECHO, cut

MISSING = "the following arguments are required"  # (argparse's words)


class Parser(argparse.ArgumentParser):
    """argparse, but its own errors name the field like ours do (exit 2, one line)."""

    _typed: Sequence[str] = ()  # what the parse under way was given

    def error(self, message: str) -> None:
        unknown = self._unknown_flags() if message.startswith(MISSING) else []
        if unknown:  # argparse asks for the command before it looks at the flags: the flag is the mistake
            message = "unrecognized arguments: {}".format(" ".join(unknown))
        # argparse quotes what was typed ("unrecognized arguments: ..."): never a page of it
        self.exit(2, "{}: error: {} (see {} --help)\n".format(self.prog, cut(message, 2 * MAX_ECHO), self.prog))

    def _unknown_flags(self) -> List[str]:
        """The flags given to this parser that none of its options is, nor begins (argparse takes
        ``--insec`` for ``--insecure``); ``--flag=value`` by its flag, ``-5`` a value."""
        typed = self._typed[:self._typed.index("--")] if "--" in self._typed else self._typed
        flags = [t for t in typed if t.startswith("-") and t != "-" and not self._negative_number_matcher.match(t)]
        return [f for f in flags if not any(o.startswith(f.split("=", 1)[0]) for o in self._option_string_actions)]

    def parse_known_args(self, args=None, namespace=None):
        self._typed = list(sys.argv[1:] if args is None else args)
        known, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:  # a command's own: its --help is the one that lists its flags
            self.error("unrecognized arguments: {}".format(" ".join(extras)))
        return known, extras


def given(text: str) -> str:
    """For a flag whose value is text: anything but blank (argparse names the flag)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("blank (give a value, or leave the flag out)")
    return text
