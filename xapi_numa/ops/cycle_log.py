"""What one cycle of xapi-numad changed: its log lines, the counts in its report, and
the VMs it re-picked whole."""
import logging
from typing import List, Set, Tuple

from xapi_numa.core.homing import REPICK
from xapi_numa.ops.executor import DONE, Outcome, log_event


def _repick(action) -> bool:
    """A credit2 re-pick (core/homing.py): a vCPU's own hard affinity written again, no soft
    affinity; nothing moved, so not reported as a soft-affinity change."""
    return type(action).__name__ == "SetAffinity" and action.reason == REPICK


def fully_repicked(outcomes: List[Outcome]) -> Set[Tuple[str, int]]:
    """(uuid, domid) of the VMs whose every re-pick of the cycle was made: one the write
    budget cut short is not done, and its vCPUs left out are re-picked next cycle."""
    repicks = [o for o in outcomes if _repick(o.action)]
    short = {(o.action.uuid, o.action.domid) for o in repicks if o.status != DONE}
    return {(o.action.uuid, o.action.domid) for o in repicks if o.status == DONE} - short


def homes_moved(outcomes: List[Outcome]) -> bool:
    """Did the cycle write a guest's soft or node affinity (the fix-up)?  The snapshot it
    looked at no longer says where that guest is homed."""
    kinds = ("SetNodeAffinity", "SetAffinity")
    return any(o.status == DONE and type(o.action).__name__ in kinds and o.action.domid != 0
               and getattr(o.action, "soft", True) is not None for o in outcomes)


def log_changes(logger: logging.Logger, outcomes: List[Outcome]) -> None:
    """One log line per kind of change the cycle made."""
    backends = [o.action for o in outcomes if o.status == DONE and type(o.action).__name__ in (
        "SetThreadAffinity", "SetIrqAffinity", "RestoreBackendAffinity", "ForgetBackendAffinity")]
    if backends:
        log_event(logger, logging.INFO, "backend work placed", count=len(backends),
                  changes=sorted({a.reason for a in backends}))
    pins = [o for o in outcomes if o.status == DONE and type(o.action).__name__ == "PinTemporarily"]
    if pins:
        log_event(logger, logging.INFO, "pinned displaced vCPUs home", count=len(pins),
                  vcpus=["{}.{}".format(o.action.domid, o.action.vcpu) for o in pins])
    restores = [o for o in outcomes if o.status == DONE and type(o.action).__name__ == "RestorePin"
                and o.action.domid is not None]
    if restores:
        log_event(logger, logging.INFO, "pins restored", count=len(restores),
                  reasons=sorted({o.action.reason for o in restores}))
    repicks = [o for o in outcomes if o.status == DONE and _repick(o.action)]
    if repicks:
        log_event(logger, logging.INFO, "re-picked displaced vCPUs", count=len(repicks),
                  vcpus=["{}.{}".format(o.action.domid, o.action.vcpu) for o in repicks])
    for o in outcomes:
        if o.status == DONE and type(o.action).__name__ == "SetAffinity" and o.action.vcpu == 0 \
                and not _repick(o.action):
            log_event(logger, logging.INFO, "soft affinity set", domid=o.action.domid,
                      reason=o.action.reason)


def tally(outcomes: List[Outcome]) -> dict:
    """The cycle's report: how many of each change were made, and how many deferred."""
    done = [o for o in outcomes if o.status == DONE]
    kinds = [type(o.action).__name__ for o in done]
    return {"pinned": kinds.count("PinTemporarily"),
            "restored": sum(1 for o in done if type(o.action).__name__ == "RestorePin" and o.action.domid is not None),
            "soft_moved": len({o.action.domid for o in done
                               if type(o.action).__name__ == "SetAffinity" and not _repick(o.action)}),
            "repicked": sum(1 for o in done if _repick(o.action)),
            "deferred": sum(1 for o in outcomes if o.status == "deferred")}
