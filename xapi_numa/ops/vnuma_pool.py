"""A VM's vNUMA plan through the pool: the host that plans it, and the plugin call.

The plan itself is made on that host by the ``numa`` plugin's ``vnuma_plan``
(:mod:`xapi_numa.ops.vnuma_xapi`): the host it runs on, the one named, or for a
halted VM the one placement likes best for it (:func:`xapi_numa.ops.pool.candidates`).
"""
from typing import Optional

from xapi_numa.backends import xapi
from xapi_numa.errors import InvalidArgument, NoHost
from xapi_numa.ops.plugin_words import NO_STORE_SAID
from xapi_numa.ops.pool import candidates, host_named, plugin_result
from xapi_numa.ops.vnuma_xapi import check_storable


def pool_plan(session, vm_name_or_uuid: str, mode: str = "follow", half: Optional[int] = None,
              host: Optional[str] = None, store: bool = False, no_store_said: str = NO_STORE_SAID) -> dict:
    """Plan (and with ``store`` record) a VM's vNUMA layout through the numa plugin of the
    host it runs on, the one named (by UUID, or by a name no other host has; xapi must
    say the VM can boot there), or the one placement likes best for it.  The answer
    names the host used: ``host`` (its name) and ``host_uuid``.  A plan to store on a VM
    xapi never starts is refused before any host is asked, offering ``no_store_said`` (how the
    caller's user asks for a plan not stored: the plugin's words by default, the CLI's its own)."""
    vm, uuid = xapi.vm_ref_by_name_or_uuid(session, vm_name_or_uuid)
    record = xapi.vm_record(session, vm)
    if store:  # (the plugin refuses it too, in its own words: its callers type its arguments)
        check_storable(record, uuid, no_store_said)
    if record["power_state"] in ("Running", "Paused"):
        if host is not None:  # a running VM is planned where it runs, never elsewhere
            raise InvalidArgument("host", "{} is {} on its host: it is planned there".format(
                vm_name_or_uuid, record["power_state"].lower()), "host only for a halted VM")
        target = record["resident_on"]
    elif host is not None:
        target, host_record = host_named(session, host)
        try:  # as a start there would: a plan for a host the VM cannot boot on is no plan
            xapi.call(session.xenapi.VM.assert_can_boot_here, vm, target)
        except xapi.XapiError as err:
            raise NoHost("{} cannot boot on host {} ({}): {}".format(
                vm_name_or_uuid, host_record["name_label"], host_record["uuid"], " ".join([err.code, *err.params])),
                [host_record["uuid"], err.code, *err.params]) from None
    else:
        target = candidates(session, uuid)[0][1]
    args = {"vm": uuid, "mode": mode, "store": "true" if store else "false"}
    if half is not None:
        args["half"] = str(half)
    result = plugin_result(session, target, "vnuma_plan", args)
    return dict(result, host=xapi.call(session.xenapi.host.get_name_label, target),
                host_uuid=xapi.call(session.xenapi.host.get_uuid, target))
