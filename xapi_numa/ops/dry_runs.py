"""xapi-numad's dry runs: what its cycle and its rebalancer would do now, nothing applied.

``xapi-numa homing --dry-run`` and the plugin's ``homing`` ask :func:`what_now`, and
``xapi-numa rebalance --dry-run`` asks :func:`rebalance_dry_run`, of a
:class:`~xapi_numa.ops.runtime.Runtime` given xapi-numad's view of the VMs.  A host
guest mask that cannot be read is refused here, naming it and its syntax (the
daemon's own cycle leaves every VM alone instead: :mod:`.left_alone`).
"""
from typing import List

import attrs

from xapi_numa.core import homing
from xapi_numa.ops import observe
from xapi_numa.ops.executor import Executor, Outcome
from xapi_numa.ops.rebalancing import Decision
from xapi_numa.ops.reserve import room_pages


def rebalance_dry_run(rt, samples: int = 3) -> Decision:
    """What ``rt``'s rebalancer would decide now: its demand is measured over ``samples``
    looks, ``rebalance_period`` apart (on the host's clock), and nothing is changed."""
    decision = None
    executor, rt.executor = rt.executor, Executor(rt.hv, rt.db, rt.logger, dry_run=True)
    sustain = rt.rebalancer.settings.sustain
    try:
        for i in range(max(1, samples)):
            if i:
                rt.hv.sleep(rt.settings.rebalance_period)
            snap = rt.snapshot(refuse=True)
            decision = rt.rebalancer.decide(snap, rt.readings.pages, rt.excluded(snap), rt.chunk_pages,
                                            {(p.uuid, p.vcpu) for p in rt.pins.entries()},
                                            record=False, room=room_pages(rt.hv, rt.ledger),
                                            max_writes=rt.settings.max_writes)
    finally:
        rt.executor = executor
    waits = decision.assessment.best is not None and decision.streak < sustain
    return attrs.evolve(decision, note=decision.note + (" (the daemon acts once this has stood for {} periods)"
                                                        .format(sustain) if waits else ""))


def what_now(rt) -> List[Outcome]:
    """``rt``'s cycle plan now, nothing applied: no threshold nor credit2's waits (README), the cycle's fix-up."""
    snap = rt.masked(observe.take(rt.hv, None, with_pages=True), refuse=True)
    if rt.settings.scheduler:
        snap = attrs.evolve(snap, scheduler=rt.settings.scheduler)
    pins = rt.pins.entries()
    excluded = rt.excluded(snap)
    actions = list(homing.plan_restores(snap, pins, rt.settings.pin_timeout, boot=rt.boot))
    actions += homing.plan(snap, {}, 0.0, excluded, homing.pinned_keys(snap, pins))
    actions += rt.fixup(snap, excluded)
    return Executor(rt.hv, rt.db, rt.logger, dry_run=True).apply(actions)
