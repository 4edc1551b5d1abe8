"""The pin journal: xapi-numad's temporary hard pins, written before each pin is
made and removed after it is undone, so that a daemon killed in between finds
them at its next start and puts the original affinity back (each says the boot it
was made in: after a power loss, the domain it was on is gone)."""
import logging
from typing import List, Optional

from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.homing import PinRecord
from xapi_numa.state.db import Database
from xapi_numa.state.rows import CPU_LIST, INTEGER, NUMBER, TEXT, LeftOut, Table

TEMP_PIN = Table("temp_pin", ("uuid", "vcpu"), {"uuid": TEXT, "vcpu": INTEGER, "domid": INTEGER, "pinned_at": NUMBER,
                                                 "pinned_to": CPU_LIST, "original_hard": CPU_LIST, "boot": TEXT})


class PinJournal:
    def __init__(self, db: Database, logger: Optional[logging.Logger] = None) -> None:
        self.db = db
        self.left_out = LeftOut(logger)  # read at the daemon's start and in its every cycle

    def record(self, pin: PinRecord) -> None:
        with self.db.write() as db:
            db.execute("INSERT OR IGNORE INTO temp_pin (uuid, vcpu, domid, original_hard, pinned_at, pinned_to, boot) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (pin.uuid, pin.vcpu, pin.domid, format_ids(pin.original_hard),
                                                        pin.pinned_at, format_ids(pin.pinned_to), pin.boot))

    def entries(self) -> List[PinRecord]:
        """The pins journalled: a damaged row is left out."""
        with self.db.read() as db:
            rows = TEMP_PIN.rows(self.db, db, ("uuid", "vcpu", "domid", "pinned_to", "original_hard", "pinned_at",
                                               "boot"),
                                 "ORDER BY uuid, vcpu", left_out=self.left_out.reading())
        return [PinRecord(*row) for row in rows]

    def drop(self, uuid: str, vcpu: int) -> None:
        with self.db.write() as db:
            db.execute("DELETE FROM temp_pin WHERE uuid = ? AND vcpu = ?", (uuid, vcpu))
