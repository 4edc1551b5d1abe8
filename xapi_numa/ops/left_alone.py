"""The VMs xapi-numad's homing and soft-affinity fix-up leave alone (the rebalancer is
told of them too, beside its own reasons: :meth:`.rebalancing.Rebalancer.loads`).

* a VM whose memory a mover of ours is moving: the mover sets its affinity when done;
* a VM whose policy is ``any`` (Xen's default, no affinity) or ``strict`` (hard
  affinity, the admin's);
* a VM whose stored policy cannot be read (:func:`~xapi_numa.core.policy.stored_or_default`:
  ``numa_mode=strict`` with a typo in ``numa_nodes`` may be meant to stay where it is,
  and the default policy is no guess to act on), as the rebalancer leaves it
  (:meth:`.xapi_link.XapiLink.rebalance_opted_out`).  Why is logged once per VM (again
  if the error changes, or after it was readable in between);
* every VM, while the host's guest mask (``guest_VCPUs_params:mask``) cannot be read
  (:attr:`~xapi_numa.core.snapshot.HostSnapshot.guest_mask_error`): where their vCPUs
  may run is not known, and no mask is no guess to act on.  Logged once per change of
  the error, and when it can be read again.  The cycle's own upkeep goes on: our
  temporary pins are still undone, dead movers recovered.
"""
import logging
from typing import Callable, Dict, Iterable, Optional, Set

from xapi_numa.core.policy import Policy
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.errors import NumaError
from xapi_numa.ops.executor import log_event

UNREADABLE = "VM left alone: its stored NUMA policy cannot be read"
MASK_UNREADABLE = "every VM left alone: the host's guest mask cannot be read"


class LeftAlone:
    def __init__(self, policy_of: Callable[[str], Policy], policy_error: Callable[[str], Optional[str]],
                 logger: logging.Logger) -> None:
        self.policy_of = policy_of        # a VM's policy (the default while xapi is away)
        self.policy_error = policy_error  # why a VM's stored policy cannot be read, or None
        self.logger = logger
        self._said: Dict[str, str] = {}   # uuid -> the error logged for it
        self._mask_said: Optional[str] = None  # the host guest mask's error logged last

    def excluded(self, snap: HostSnapshot, moving: Iterable[str]) -> Set[int]:
        """The domids to leave alone; ``moving``: UUIDs of VMs a mover of ours is moving."""
        moving = set(moving)
        out: Set[int] = set()
        unreadable: Dict[str, str] = {}
        for d in snap.domains:
            try:
                error = self.policy_error(d.uuid)
                mode = self.policy_of(d.uuid).mode if error is None else None
            except NumaError as err:  # a policy_of that refuses the stored policy: as unreadable
                error, mode = err.message, None
            if error is not None:
                unreadable[d.uuid] = error
            if error is not None or mode in ("any", "strict") or d.uuid in moving:
                out.add(d.domid)
        for uuid, error in sorted(unreadable.items()):
            if self._said.get(uuid) != error:
                log_event(self.logger, logging.WARNING, UNREADABLE, vm=uuid, error=error,
                          fix="set the key named to an allowed value (xe vm-param-set), or the plugin's set_policy")
        # a VM not read this time is not gone: what was said of it stands
        self._said = dict({u: e for u, e in self._said.items() if u in snap.unread}, **unreadable)
        return out | self._all_if_no_mask(snap)

    def _all_if_no_mask(self, snap: HostSnapshot) -> Set[int]:
        """Every domain while the host's guest mask cannot be read (said once per change)."""
        error = snap.guest_mask_error
        if error != self._mask_said:
            if error is None:
                log_event(self.logger, logging.INFO, "the host's guest mask can be read again: VMs are homed again")
            else:
                log_event(self.logger, logging.WARNING, MASK_UNREADABLE, error=error,
                          fix="comma-separated CPU numbers in it (xe host-param-set), "
                              "or remove it (xe host-param-remove)")
        self._mask_said = error
        return set() if error is None else {d.domid for d in snap.domains}
