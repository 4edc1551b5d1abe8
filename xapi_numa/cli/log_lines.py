"""How the library's log events reach a person running ``xapi-numa``.

The modules the CLI shares with xapi-numad log warnings as structured events
(``ops.executor.log_event``: an event name, its details as fields), which
xapi-numad writes as JSON lines.  In a command nobody set up logging, so
Python's last-resort handler printed the bare event name ("xapi unreachable:
running without it") with no program name and without the details that say
what it is about.  Here such a warning is one line on standard error, as the
command's own errors are: ``xapi-numa: warning: EVENT (field=value, ...)``.
The details that only mean something to a daemon are left out: a command
tries once, so "retry_in" (xapi-numad's next login) would promise a retry
that never comes.
"""
import contextlib
import logging
import sys
from typing import Iterator, Mapping

LOGGERS = ("xapi-numa", "xapi-numad")  # the loggers of the modules a command runs (not the plugin's)
DAEMON_ONLY = frozenset({"retry_in"})  # fields of an event that describe xapi-numad's next step


def _detail(value: object) -> str:
    text = str(value)
    return repr(text) if (not text or any(c in text for c in " ,()=") or not text.isprintable()) else text


def warning_line(event: str, fields: Mapping[str, object]) -> str:
    """One warning as a command says it."""
    details = ", ".join("{}={}".format(k, _detail(v)) for k, v in sorted(fields.items()) if k not in DAEMON_ONLY)
    return "xapi-numa: warning: {}{}".format(event, " ({})".format(details) if details else "")


class WarningLines(logging.Handler):
    """Warnings and errors as :func:`warning_line` says them, to the standard error of the
    moment (a test's capture, or one replaced by ``main``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = getattr(record, "fields", None)
            line = warning_line(record.getMessage(), fields if isinstance(fields, Mapping) else {})
            sys.stderr.write(line + "\n")
        except Exception:  # a log line never stops a command, nor shows a traceback
            pass


@contextlib.contextmanager
def warnings_said() -> Iterator[None]:
    """While a command runs, the shared modules' warnings are said as :class:`WarningLines`
    (and only then: ``main`` runs many times in one test process, beside xapi-numad's own
    handlers)."""
    handler = WarningLines()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
