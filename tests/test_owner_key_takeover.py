"""The owner key's takeover of a dead caller's key, under every order of xapi calls.

xapi has no conditional remove: a takeover that read the dead caller's token and
then removed "the key" could remove the token a faster caller had just written,
and both would own the VM.  Two callers (and an owner that lets go) run in
lock step against an in-memory other_config whose calls are each atomic, as
xapi's are under its database lock; a seeded scheduler picks which caller's
next call runs.  Whatever the order, at most one caller owns the VM at any
time, and a caller told it owns it still does until it lets go.
"""
import random
import threading
from typing import Dict, List

import pytest
import XenAPI

from xapi_numa.backends import xapi_owner_key

KEY = "numa_owner"
STALE = "dead-caller"


class _Turns:
    """Lock step: a caller's thread waits at each xapi call until the scheduler picks it."""

    def __init__(self, rng: random.Random, names: List[str]) -> None:
        self.rng, self.cond = rng, threading.Condition()
        self.waiting: Dict[str, bool] = {}
        self.running = set(names)
        self.turn = None

    def wait(self, name: str) -> None:
        with self.cond:
            self.waiting[name] = True
            self.cond.notify_all()
            while self.turn != name:
                self.cond.wait(5)
            self.turn, self.waiting[name] = None, False

    def done(self, name: str) -> None:
        with self.cond:
            self.running.discard(name)
            self.cond.notify_all()

    def schedule(self) -> None:
        with self.cond:
            while self.running:
                ready = [n for n in sorted(self.running) if self.waiting.get(n)]
                if self.turn is None and ready and len(ready) == len(self.running):
                    self.turn = self.rng.choice(ready)
                    self.cond.notify_all()
                self.cond.wait(0.01)


class _Config:
    """One VM's other_config, each call atomic; ``owners`` says who holds the VM now."""

    def __init__(self, start: Dict[str, str]) -> None:
        self.map = dict(start)
        self.lock = threading.Lock()


class _VMCalls:
    def __init__(self, config: _Config, turns: _Turns, name: str) -> None:
        self.config, self.turns, self.name = config, turns, name

    def get_other_config(self, vm):
        self.turns.wait(self.name)
        with self.config.lock:
            return dict(self.config.map)

    def add_to_other_config(self, vm, key, value):
        self.turns.wait(self.name)
        with self.config.lock:
            if key in self.config.map:
                raise XenAPI.Failure(["MAP_DUPLICATE_KEY", "VM", "other_config", vm, key])
            self.config.map[key] = value

    def remove_from_other_config(self, vm, key):
        self.turns.wait(self.name)
        with self.config.lock:
            self.config.map.pop(key, None)


class _Session:
    def __init__(self, calls: _VMCalls) -> None:
        self.xenapi = type("X", (), {"VM": calls})()


STARTS = [{KEY: STALE}, {KEY + ".3": STALE}, {KEY: STALE, KEY + ".1": STALE}]


def _race(seed: int):
    rng = random.Random(seed)
    names = ["a", "b", "c"][:2 + seed % 2]
    turns, config = _Turns(rng, names), _Config(STARTS[seed % len(STARTS)])
    owned: Dict[str, bool] = {}
    overlaps: List[str] = []
    holding = set()
    guard = threading.Lock()

    def caller(name: str) -> None:
        session = _Session(_VMCalls(config, turns, name))
        try:
            for _ in range(2):  # claim, work, let go, and again: the generations start over in between
                _one_claim(session, name)
        finally:
            turns.done(name)

    def _one_claim(session, name: str) -> None:
        won = xapi_owner_key.claim_other_config_key(session, "vm", KEY, "token-" + name, stale=lambda t: t == STALE)
        owned[name] = owned.get(name, False) or won
        if won:
            with guard:
                if holding:
                    overlaps.append("{} owns while {} does".format(name, holding))
                holding.add(name)
            # still ours while we work: a caller told it owns the VM does until it lets go
            turns.wait(name)
            with config.lock:
                held = [k for k, v in config.map.items() if v == "token-" + name]
            if not held:
                overlaps.append("{}'s key was taken while it owned the VM".format(name))
            # and its own check before each write (still_owning) says so too, whatever key a caller
            # with an old read has put above its own meanwhile
            if not xapi_owner_key.holds_other_config_key(session, "vm", KEY, "token-" + name,
                                                         stale=lambda t: t == STALE):
                overlaps.append("{} was told it had been taken over while it owned the VM".format(name))
            with guard:
                holding.discard(name)
            xapi_owner_key.release_other_config_key(session, "vm", KEY, "token-" + name)

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    turns.schedule()
    for t in threads:
        t.join(10)
    return owned, overlaps, config.map


@pytest.mark.parametrize("seed", range(200))
def test_two_takeovers_of_a_dead_callers_key_never_both_own(seed):
    owned, overlaps, left = _race(seed)
    assert not overlaps, (seed, owned, overlaps)
    assert any(owned.values()), owned  # the dead caller's key is taken over by someone
    assert not [k for k, v in left.items() if v.startswith("token-")], left  # owners let go of what they took


def test_the_highest_generation_owns():
    config = {KEY: "old", KEY + ".2": "new", KEY + ".x": "not ours", KEY + ".0": "not ours", "other": "y"}
    assert xapi_owner_key.generations(config, KEY) == [(0, KEY), (2, KEY + ".2")]
    assert xapi_owner_key.owner_of(config, KEY) == "new" and xapi_owner_key.owner_of({}, KEY) is None
