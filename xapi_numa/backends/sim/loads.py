"""Guest load profiles: when a simulated vCPU wants to run.

``idle``   never runnable (blocked),
``busy``   always runnable,
``bursty:PERIOD:DUTY`` runnable for DUTY of every PERIOD (PERIOD like ``2s``
or ``500ms``; DUTY like ``0.3`` or ``30%``), each vCPU with its own phase.
"""

import re
from typing import Tuple

import attrs

from xapi_numa.errors import InvalidArgument

LOAD_SYNTAX = "idle, busy, or bursty:PERIOD:DUTY (e.g. bursty:2s:30%)"
TICK_MS = 10


def _parse_period_ms(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip())
    if not m:
        raise InvalidArgument("load", f"bad period {text!r}", LOAD_SYNTAX)
    value = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    return int(value)


def _parse_duty(text: str) -> float:
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise InvalidArgument("load", f"bad duty {text!r}", LOAD_SYNTAX) from None
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument("load", f"duty {text!r} is outside 0..1 (0%..100%)", LOAD_SYNTAX)
    return value


@attrs.frozen
class LoadProfile:
    kind: str  # idle | busy | bursty
    period_ticks: int = 0
    active_ticks: int = 0

    @classmethod
    def parse(cls, text: str) -> "LoadProfile":
        t = str(text).strip()
        if t in ("idle", "busy"):
            return cls(t)
        if t.startswith("bursty:"):
            parts = t.split(":")
            if len(parts) != 3:
                raise InvalidArgument("load", f"{text!r} needs a period and a duty", LOAD_SYNTAX)
            period_ms = _parse_period_ms(parts[1])
            if period_ms < 2 * TICK_MS:
                raise InvalidArgument("load", f"period {parts[1]!r} is shorter than 20ms", LOAD_SYNTAX)
            period = period_ms // TICK_MS
            return cls("bursty", period, round(_parse_duty(parts[2]) * period))
        raise InvalidArgument("load", f"unknown load profile {text!r}", LOAD_SYNTAX)

    def __str__(self) -> str:
        if self.kind != "bursty":
            return self.kind
        duty = 100.0 * self.active_ticks / self.period_ticks
        return f"bursty:{self.period_ticks * TICK_MS}ms:{duty:g}%"

    def active(self, tick: int, phase: int) -> bool:
        if self.kind == "busy":
            return True
        if self.kind == "idle":
            return False
        return (tick + phase) % self.period_ticks < self.active_ticks

    def changes_at(self, tick: int, phase: int) -> bool:
        return self.kind == "bursty" and self.active(tick, phase) != self.active(tick - 1, phase)

    def phase_range(self) -> Tuple[int, int]:
        return (0, max(1, self.period_ticks))
