"""Rows read back from the state database, each column as the type xapi-numa wrote it.

SQLite keeps a column's declared type as an affinity only: an INTEGER column takes
'soon', a TEXT one a blob, and root can edit the file by hand (sqlite3), or a disk
damage it.  Every reader in :mod:`xapi_numa.state` decodes its rows here, so that a
value that is not what we wrote is a :class:`~xapi_numa.errors.DamagedRow` naming
the database, the table, the row's key, the column and what was expected, and
saying what to do: never a TypeError or a JSON error further on ("internal error"),
nor a CPU list of a billion ids expanded (a CPU list is bounded by the host's CPUs
before it is read, as a user's is).
"""
import json
import logging
import math
import sqlite3
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import attrs

from xapi_numa.core.cpuset import parse_ids
from xapi_numa.core.numbers import is_decimal, shown
from xapi_numa.errors import DamagedRow
from xapi_numa.state.db import AFRESH, Database

SHOWN = 60  # characters of a value, or of a key, quoted in an error
UNREADABLE = (ValueError, TypeError, RecursionError)  # (RecursionError: JSON nested too deeply)


@attrs.frozen
class Kind:
    """What a column holds: ``read`` gives its value, or raises one of :data:`UNREADABLE`;
    ``expected`` says, in an error, what it should have held; ``as_read``, if given,
    whether ``read`` gives every value of a column as it is (checked in C-speed passes:
    a start reads a hundred rows; then nothing is read value by value)."""

    expected: str
    read: Callable[[object], object]
    as_read: Optional[Callable[[Sequence[object]], bool]] = None


def _typed(kind: type) -> Callable[[object], object]:
    def read(value: object) -> object:
        if type(value) is not kind:  # (exactly: a bool is no integer of ours)
            raise TypeError(value)
        return value
    return read


def _all_typed(kind: type) -> Callable[[Sequence[object]], bool]:
    def as_read(values: Sequence[object]) -> bool:
        return set(map(type, values)) <= {kind}
    return as_read


def _number(value: object) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise TypeError(value)
    return float(value)  # type: ignore[arg-type]


def _all_floats(values: Sequence[object]) -> bool:
    """Finite floats: each reads as itself (an integer reads as a float: value by value)."""
    return set(map(type, values)) <= {float} and all(map(math.isfinite, values))  # type: ignore[arg-type]


INTEGER = Kind("an integer", _typed(int), _all_typed(int))
NUMBER = Kind("a finite number", _number, _all_floats)
TEXT = Kind("text", _typed(str), _all_typed(str))


def one_of(*values: object) -> Kind:
    """One of ``values`` (all of one type)."""
    def read(value: object) -> object:
        if type(value) is not type(values[0]) or value not in values:
            raise ValueError(value)
        return value

    def as_read(column: Sequence[object]) -> bool:
        return set(map(type, column)) <= {type(values[0])} and set(column) <= set(values)
    return Kind("one of {}".format(", ".join(map(str, values))), read, as_read)


def optional(kind: Kind) -> Kind:
    """``kind``, or NULL (read as None: not known)."""
    def read(value: object) -> object:
        return None if value is None else kind.read(value)
    return Kind(kind.expected + " or NULL", read)


def json_of(expected: str, fits: Callable[[object], bool]) -> Kind:
    """JSON text of a value that ``fits``."""
    def read(value: object) -> object:
        data = json.loads(TEXT.read(value))  # type: ignore[arg-type]
        if not fits(data):
            raise ValueError(value)
        return data
    return Kind(expected, read)


# Bounds a CPU list read back before it is expanded (a hand's 0-1000000000 took minutes).  Not
# the host's CPUs now: a row outlives a reboot with fewer (hyper-threads off), and such a pin
# must still be undone or forgotten as before; Xen has at most 4096 (NR_CPUS).
MAX_CPU = 4095


def _cpus(text: object) -> object:
    return parse_ids(TEXT.read(text), MAX_CPU)  # type: ignore[arg-type]


CPU_LIST = Kind("a CPU list of ids 0..{} as xapi-numa writes it, e.g. 0-3,6".format(MAX_CPU), _cpus)


def _cpu_lists(value: object) -> object:
    data = json.loads(TEXT.read(value) or "{}")  # type: ignore[arg-type]
    if not isinstance(data, dict) or not all(is_decimal(v) and len(v) <= 6 for v in data):
        raise ValueError(value)
    return {int(v): _cpus(cpus) for v, cpus in data.items()}


# "" reads as none
CPU_LISTS = Kind('a JSON object of vCPU -> CPU list of ids 0..{}, e.g. {{"0": "0-3"}}'.format(MAX_CPU), _cpu_lists)


def _undecoded(data: bytes) -> object:
    """Text as ``str``, or, where it is no UTF-8, its bytes (which no text kind reads)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _fetched(conn, sql: str, args: Sequence[object]) -> List[tuple]:
    """The rows of ``sql``.  Python's sqlite3 refuses text that is no UTF-8 for the whole query,
    naming neither the table nor the row: such a query is read again with that text as bytes,
    so that the row holding it is named (the default reader stays for every other query: it
    is the fast one)."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as err:
        if "decode" not in str(err):
            raise
    conn.text_factory = _undecoded
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.text_factory = str


def damaged(db: Database, table: str, key: str, column: str, expected: str, value: object) -> DamagedRow:
    return DamagedRow("state database {}: table {}, row {}: column {} holds {}, expected {} (with xapi-numad "
                      "stopped, correct or delete that row with sqlite3; or {})".format(
                          db.path, table, key, column, shown(value, SHOWN), expected, AFRESH))


@attrs.frozen
class Table:
    """A table's columns and the kinds they hold, and the columns that name a row (its key)."""

    name: str
    key: Tuple[str, ...] = attrs.field(converter=tuple)
    kinds: Mapping[str, Kind] = attrs.field(converter=dict)

    def rows(self, db: Database, conn, columns: Sequence[str], rest: str = "", args: Sequence[object] = (),
             left_out: Optional[Callable[[DamagedRow], None]] = None) -> List[tuple]:
        """``SELECT columns FROM table rest`` on ``conn`` (a transaction of ``db``), each row
        decoded.  A damaged row raises, or with ``left_out``, is handed to it and left out."""
        names = [c for c in self.key if c not in columns] + list(columns)  # its key, to name a damaged row
        kinds = [self.kinds[c] for c in names]
        first, out = len(names) - len(columns), []
        found = _fetched(conn, "SELECT {} FROM {} {}".format(", ".join(names), self.name, rest), args)
        if all(k.as_read is not None for k in kinds) and all(k.as_read(values)  # type: ignore[misc]
                                                             for k, values in zip(kinds, zip(*found))):
            return found if not first else [row[first:] for row in found]  # every value as it is
        reads = [k.read for k in kinds]
        for row in found:
            try:
                out.append(tuple([read(value) for read, value in zip(reads, row)][first:]))
            except UNREADABLE:
                err = self._damaged(db, names, row)
                if left_out is None:
                    raise err from None
                left_out(err)
        return out

    def _damaged(self, db: Database, names: List[str], row: tuple) -> DamagedRow:
        """The error of the first column of ``row`` that cannot be read."""
        key = ", ".join("{}={}".format(c, shown(row[names.index(c)], SHOWN)) for c in self.key)
        for column, value in zip(names, row):
            try:
                self.kinds[column].read(value)
            except UNREADABLE:
                return damaged(db, self.name, key, column, self.kinds[column].expected, value)
        raise AssertionError("row {} of {} read at the second try".format(key, self.name))

    def sums(self, db: Database, conn, group: str, column: str, where: str = "",
             args: Sequence[object] = ()) -> Dict[int, int]:
        """``SELECT group, SUM(column) FROM table where GROUP BY group``, summed by SQLite.  A
        group or a sum that is no integer comes of a row that holds none there: only then are
        the rows read, to name that one."""
        sums = _fetched(conn, "SELECT {0}, SUM({1}) FROM {2} {3} GROUP BY {0}".format(
            group, column, self.name, where), args)  # (a group of text that is no UTF-8: bytes, no int)
        if all(type(g) is int and type(s) is int for g, s in sums):
            return dict(sums)
        self.rows(db, conn, (group, column), "WHERE typeof({}) != 'integer' OR typeof({}) != 'integer'".format(
            group, column))  # (raises: the kinds of both are INTEGER)
        raise damaged(db, self.name, "(every row)", "SUM({})".format(column), "integers", sums)


class LeftOut:
    """For a journal whose only use is to undo our own changes (temporary pins, dom0 backend
    affinity).  xapi-numad reads it at its start and in every cycle: refusing a damaged row
    would stop it for good, over a row it could not act on anyway.  Such a row is left out,
    said once per journal (the daemon keeps one for its life) as a warning naming it; it
    stays in the database for an admin, and ``count`` says how many the last read left out
    (a stop or a hand-back that leaves them has not put everything back)."""

    def __init__(self, logger: Optional[logging.Logger] = None) -> None:
        self.logger = logger or logging.getLogger("xapi-numa")
        self.said: Set[str] = set()
        self.count = 0

    def reading(self) -> "LeftOut":
        """This, its count at 0 for a new read."""
        self.count = 0
        return self

    def __call__(self, err: DamagedRow) -> None:
        self.count += 1
        if err.message not in self.said:
            self.said.add(err.message)
            self.logger.warning("damaged row left out: %s", err.message)
