"""The pin journal: xapi-numad's temporary hard pins, written before each pin is
made and removed after it is undone, so that a daemon killed in between finds
them at its next start and puts the original affinity back."""
from typing import List

from xapi_numa.core.cpuset import format_ids, parse_ids
from xapi_numa.core.homing import PinRecord
from xapi_numa.state.db import Database


class PinJournal:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, pin: PinRecord) -> None:
        with self.db.write() as db:
            db.execute("INSERT OR IGNORE INTO temp_pin (uuid, vcpu, domid, original_hard, pinned_at, pinned_to) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (pin.uuid, pin.vcpu, pin.domid, format_ids(pin.original_hard),
                                                     pin.pinned_at, format_ids(pin.pinned_to)))

    def entries(self) -> List[PinRecord]:
        with self.db.read() as db:
            rows = db.execute("SELECT uuid, vcpu, domid, pinned_to, original_hard, pinned_at FROM temp_pin "
                              "ORDER BY uuid, vcpu").fetchall()
        return [PinRecord(uuid, int(vcpu), int(domid), parse_ids(pinned_to), parse_ids(original),
                          float(at)) for uuid, vcpu, domid, pinned_to, original, at in rows]

    def drop(self, uuid: str, vcpu: int) -> None:
        with self.db.write() as db:
            db.execute("DELETE FROM temp_pin WHERE uuid = ? AND vcpu = ?", (uuid, vcpu))
