"""Guest load profiles: when a simulated vCPU wants to run, and how memory-bound it is.

A profile is ``KIND[:ARG...][:OPTION=VALUE...]``:

``idle``                     never runnable (blocked);
``busy``                     always runnable (steady at 100%);
``steady:DUTY``              runnable DUTY of the time, in short runs: DUTY of every
                             100 ms, each vCPU with its own phase;
``bursty:PERIOD:DUTY``       on/off phases: runnable DUTY of every PERIOD, each vCPU
                             with its own phase, or with ``at=OFFSET`` the whole VM in
                             phase, on from OFFSET into each period;
``diurnal:PERIOD:LOW:HIGH``  a slow wave of demand between LOW and HIGH over PERIOD
                             (raised cosine, peak at ``at=OFFSET``, default 0), each
                             vCPU runnable that share of every 100 ms.

Options: ``mem=M`` how memory-bound the workload is, 0 (CPU-bound) .. 1 (every
cycle waits on memory), default :data:`DEFAULT_MEM_BOUND` (see :mod:`.perf`);
``at=OFFSET`` for bursty and diurnal.  PERIOD and OFFSET like ``2s``, ``500ms``,
``10m``; DUTY, LOW, HIGH and M like ``0.3`` or ``30%``.  Only ASCII digits are
numbers.  Asymmetric load is expressed per VM (some busy, others idle).

Every profile is a pure function of the tick (and the vCPU's phase), so a run
is deterministic for a seed.  ``str(profile)`` parses back to the same profile.
"""

import math
import re
from typing import Dict, List, Tuple

import attrs

from xapi_numa.errors import InvalidArgument

# No percent sign here: this text is also an argparse help string.
LOAD_SYNTAX = ("idle, busy, steady:DUTY, bursty:PERIOD:DUTY or diurnal:PERIOD:LOW:HIGH, then "
               "optionally :mem=M (0..1, how memory-bound) and, for bursty and diurnal, :at=OFFSET; "
               "PERIOD/OFFSET like 2s, 500ms, 10m; DUTY/LOW/HIGH/M like 0.3 or a percentage "
               "(e.g. bursty:2s:0.3:mem=0.6)")
TICK_MS = 10
WINDOW_TICKS = 10  # steady and diurnal: the duty is applied over every 100 ms
DEFAULT_MEM_BOUND = 500  # per mille: a moderately memory-bound workload
MAX_PERIOD_MS = 7 * 24 * 3600 * 1000
KINDS = ("idle", "busy", "steady", "bursty", "diurnal")
_ARGS = {"idle": 0, "busy": 0, "steady": 1, "bursty": 2, "diurnal": 3}
_ARG_NAMES = {"steady": "DUTY", "bursty": "PERIOD:DUTY", "diurnal": "PERIOD:LOW:HIGH"}
_OPTIONS = "mem=M (any profile), at=OFFSET (bursty, diurnal)"
_NUMBER = re.compile(r"([0-9]{1,12})(\.[0-9]{1,12})?", re.ASCII)
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,12})?)(ms|s|m|h)?", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "h": 3_600_000}


def _duration_ms(text: str, what: str) -> int:
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise InvalidArgument("load", f"{what} {text!r} is not a duration", "like 500ms, 2s, 10m, 1h")
    value = float(m.group(1)) * _UNIT_MS[m.group(2)]
    if value > MAX_PERIOD_MS:
        raise InvalidArgument("load", f"{what} {text!r} is longer than a week", "up to 7 days")
    return int(value)


def _fraction_milli(text: str, what: str) -> int:
    """0..1 or 0%..100%, in per mille (the profile's resolution)."""
    t = text.strip()
    percent = t.endswith("%")
    m = _NUMBER.fullmatch(t[:-1] if percent else t)
    if not m:
        raise InvalidArgument("load", f"{what} {text!r} is not a number", "0..1 or 0%..100%")
    value = float(m.group(0)) / (100.0 if percent else 1.0)
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument("load", f"{what} {text!r} is outside 0..1", "0..1 or 0%..100%")
    return int(round(value * 1000))


def _split(text: str) -> Tuple[str, List[str], Dict[str, str]]:
    """KIND, its positional arguments and its options (which come last)."""
    parts = [p.strip() for p in text.split(":")]
    kind, args, options = parts[0], [], {}
    for part in parts[1:]:
        if "=" in part:
            key, _, value = part.partition("=")
            key = key.strip()
            if key in options:
                raise InvalidArgument("load", f"option {key!r} given twice in {text!r}", _OPTIONS)
            options[key] = value.strip()
        elif options:
            raise InvalidArgument("load", f"{part!r} comes after an option in {text!r}: options go last",
                                  LOAD_SYNTAX)
        else:
            args.append(part)
    return kind, args, options


def _percent(milli: int) -> str:
    return f"{milli / 10:g}%"


@attrs.frozen
class LoadProfile:
    """One parsed profile; times in ticks of :data:`TICK_MS`, shares in per mille."""

    kind: str  # idle | busy | steady | bursty | diurnal
    period_ticks: int = 0   # steady, bursty: on/off period; diurnal: the wave's period
    active_ticks: int = 0   # steady, bursty: runnable ticks per period
    low: int = 0            # diurnal: lowest demand (per mille)
    high: int = 0           # diurnal: highest demand (per mille)
    at_ticks: int = -1      # bursty: VM in phase, on from here; diurnal: the peak; -1 = not given
    mem: int = DEFAULT_MEM_BOUND  # how memory-bound (per mille)

    @classmethod
    def parse(cls, text: str) -> "LoadProfile":
        t = str(text).strip()
        kind, args, options = _split(t)
        if kind not in _ARGS:
            raise InvalidArgument("load", f"unknown load profile {t!r}", LOAD_SYNTAX)
        if len(args) != _ARGS[kind]:
            want = f"{kind}:{_ARG_NAMES[kind]}" if kind in _ARG_NAMES else kind
            raise InvalidArgument("load", f"{t!r} has {len(args)} argument(s); it is written {want}", LOAD_SYNTAX)
        fields = cls._positional(kind, args)
        for key, value in options.items():
            fields.update(cls._option(kind, key, value, fields.get("period_ticks", 0)))
        return cls(kind, **fields)

    @staticmethod
    def _positional(kind: str, args: List[str]) -> dict:
        if kind == "steady":
            return {"period_ticks": WINDOW_TICKS,
                    "active_ticks": int(round(_fraction_milli(args[0], "duty") * WINDOW_TICKS / 1000))}
        if kind in ("bursty", "diurnal"):
            period_ms = _duration_ms(args[0], "period")
            least = 2 * TICK_MS if kind == "bursty" else 2 * WINDOW_TICKS * TICK_MS
            if period_ms < least:
                raise InvalidArgument("load", f"period {args[0]!r} is shorter than {least}ms",
                                      f"at least {least}ms")
            period = period_ms // TICK_MS
            if kind == "bursty":
                return {"period_ticks": period,
                        "active_ticks": int(round(_fraction_milli(args[1], "duty") * period / 1000))}
            low, high = _fraction_milli(args[1], "low"), _fraction_milli(args[2], "high")
            if low > high:
                raise InvalidArgument("load", f"low {args[1]!r} is above high {args[2]!r}", "LOW <= HIGH")
            return {"period_ticks": period, "low": low, "high": high}
        return {}

    @staticmethod
    def _option(kind: str, key: str, value: str, period: int) -> dict:
        if key == "mem":
            return {"mem": _fraction_milli(value, "mem")}
        if key == "at":
            if kind not in ("bursty", "diurnal"):
                raise InvalidArgument("load", f"at= applies to bursty and diurnal, not {kind}", _OPTIONS)
            return {"at_ticks": (_duration_ms(value, "at") // TICK_MS) % period}
        raise InvalidArgument("load", f"unknown option {key!r}", _OPTIONS)

    def __str__(self) -> str:
        if self.kind == "steady":
            text = f"steady:{_percent(1000 * self.active_ticks // WINDOW_TICKS)}"
        elif self.kind == "bursty":
            text = f"bursty:{self.period_ticks * TICK_MS}ms:{100.0 * self.active_ticks / self.period_ticks:g}%"
        elif self.kind == "diurnal":
            text = f"diurnal:{self.period_ticks * TICK_MS}ms:{_percent(self.low)}:{_percent(self.high)}"
        else:
            text = self.kind
        if self.at_ticks >= 0:
            text += f":at={self.at_ticks * TICK_MS}ms"
        if self.mem != DEFAULT_MEM_BOUND:
            text += f":mem={self.mem / 1000:g}"
        return text

    # --- when vCPUs want to run -----------------------------------------------------
    @property
    def varies(self) -> bool:
        """Do vCPUs of this profile wake and block as time passes?"""
        return self.kind in ("steady", "bursty", "diurnal")

    @property
    def mem_bound(self) -> float:
        return self.mem / 1000.0

    @property
    def window(self) -> int:
        """Ticks over which the runnable share repeats (1 for idle and busy)."""
        if self.kind in ("steady", "bursty"):
            return self.period_ticks
        return WINDOW_TICKS if self.kind == "diurnal" else 1

    def demand(self, tick: int) -> float:
        """Share of the time a vCPU wants to run around this tick (0..1)."""
        if self.kind == "busy":
            return 1.0
        if self.kind in ("steady", "bursty"):
            return self.active_ticks / self.period_ticks
        if self.kind == "diurnal":
            at = max(self.at_ticks, 0)
            wave = (1.0 + math.cos(2.0 * math.pi * (tick - at) / self.period_ticks)) / 2.0
            return (self.low + (self.high - self.low) * wave) / 1000.0
        return 0.0

    def level(self, tick: int) -> int:
        """Runnable ticks per :attr:`window` at this tick."""
        if self.kind == "diurnal":
            return int(round(self.demand(tick) * WINDOW_TICKS))
        if self.kind in ("steady", "bursty"):
            return self.active_ticks
        return 1 if self.kind == "busy" else 0

    def active(self, tick: int, phase: int) -> bool:
        if self.kind == "busy":
            return True
        if self.kind == "idle":
            return False
        return (tick + phase) % self.window < self.level(tick)

    def changes_at(self, tick: int, phase: int) -> bool:
        return self.varies and self.active(tick, phase) != self.active(tick - 1, phase)

    def phase_range(self) -> Tuple[int, int]:
        """Range a vCPU's random phase is drawn from (the model draws one per vCPU)."""
        return (0, max(1, self.window))

    def vcpu_phase(self, drawn: int) -> int:
        """The phase a vCPU gets: the drawn one, or the VM's when ``at=`` puts it in phase."""
        if self.kind == "bursty" and self.at_ticks >= 0:
            return (-self.at_ticks) % self.period_ticks
        return drawn
