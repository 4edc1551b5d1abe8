"""Pool-wide operations over XenAPI: NUMA-aware VM start (where a VM is or would go:
:mod:`pool_queries`).

``vm_start`` asks every enabled host's ``numa`` plugin for a dry-run
placement, picks the host with the best NUMA fit (one node over several, a
smaller distance, no fallback; then the VM's home server, ``VM.affinity``, the hint
xapi's own start follows; then more headroom, the host running fewer VMs, its name),
reserves there (``place``), starts the VM there (``VM.start_on``) and ``settle``s it.
If concurrent starts took the room meanwhile (``place`` refuses, or places worse than the dry run promised) it
releases and ranks the hosts again; on any failure after ``place`` it
releases the reservation and restores ``VCPUs_params``, and a host that went away
between its dry run and its ``place`` is passed over like one that refused the
start.  A start holds the VM throughout (:mod:`start_hold`): a second start of it meanwhile is
refused with NUMA_VM_BUSY, never undoing this one's place.  A VM that started but could not be
settled is answered as started, with ``settled`` None and ``settle_error`` saying why (xapi-numad settles it).

A host is a candidate only if xapi says the VM can boot there
(``VM.assert_can_boot_here``: its SRs, networks, GPUs, liveness) and its
plugin answers; a host without the plugin (mid-rollout), dead or timing out
is passed over with its reason, never the end of the pool's start.  A
``VM.start_on`` that xapi refuses on the chosen host moves on to the next, unless the
failure is about the VM or the session (``xapi.not_the_hosts``: every host would say it).

The whole start has one deadline (``deadline``, :mod:`start_deadline`): every call waits
the shorter of its own deadline and what is left, and the start fails with
NUMA_START_TIMEOUT, naming the step that ran into it, once nothing is left.
"""
import contextlib

import json
from typing import Dict, List, Optional, Tuple

from xapi_numa.backends import xapi
from xapi_numa.backends.rpc_transport import deadline
from xapi_numa.core.numbers import shown
from xapi_numa.errors import HostTimeout, InvalidArgument, NoCapacity, NoHost, NumaError
from xapi_numa.ops import boot_pin, start_hold
from xapi_numa.ops.place_request import never_starts, not_a_control_domain
from xapi_numa.ops.plugin_words import FORCE_SAID
from xapi_numa.ops.start_placement import not_placed_elsewhere
from xapi_numa.ops.start_deadline import DEFAULT_S as START_DEADLINE, StartDeadline, waiting

MAX_ATTEMPTS = 6
# a host's plugin did not answer in time (the master did), or its place ran past its own budget
# (start_placement.PLACE_BUDGET, below PLACE_TIMEOUT) and undid itself
HOST_TIMEOUT = HostTimeout.code
# the host, not the VM, is the problem: pass it over
HOST_UNAVAILABLE = (HOST_TIMEOUT, "XENAPI_MISSING_PLUGIN", "XENAPI_PLUGIN_FAILURE", "HOST_OFFLINE", "HOST_NOT_LIVE",
                    "HOST_STILL_BOOTING", "HOST_DISABLED", "HOST_UNKNOWN_TO_MASTER", "HOST_IN_EMERGENCY_MODE",
                    # the master could not forward the call to the member (message_forwarding.ml)
                    "CANNOT_CONTACT_HOST", "HOST_HAS_NO_MANAGEMENT_IP",
                    # the host's plugin answers, but cannot read its hypervisor or its state
                    "NUMA_BACKEND_UNAVAILABLE", "NUMA_HYPERVISOR_ERROR", "NUMA_STATE_ERROR",
                    # its own xapi did not answer the plugin's call back to it
                    "NUMA_XAPI_UNREACHABLE")
# xapi's own capacity checks (assert_can_boot_here, and VM.start_on which asserts it):
# the host lacks the memory or the pCPUs, before its plugin is asked: no room, as NUMA_NO_CAPACITY
XAPI_NO_ROOM = ("HOST_NOT_ENOUGH_FREE_MEMORY", "HOST_NOT_ENOUGH_PCPUS")


def plugin_result(session, host: str, fn: str, args: Dict[str, str], seconds: Optional[float] = None):
    """A numa plugin call on ``host`` (place, release, settle, vnuma_plan), its JSON result
    decoded; it waits ``seconds``, by default PLACE_TIMEOUT (:func:`host_call`).  None of them waits for much on the
    host: a hung member held a start (and its settle) or a vNUMA plan for LONG_CALL_TIMEOUT,
    the 30 minutes of a VM.start_on, then failed it as if the master were wedged.  A plugin of an
    earlier version, refusing a start's own token (an argument it does not know: it checks no
    start's hold), is asked again without it."""
    seconds = xapi.PLACE_TIMEOUT if seconds is None else seconds
    try:
        return host_call(session, host, fn, args, seconds)
    except xapi.XapiError as err:
        if not start_hold.older_plugin(err, args):
            raise
    return host_call(session, host, fn, {k: v for k, v in args.items() if k != start_hold.START_OWNER_ARG}, seconds)


def host_query(session, host: str, fn: str, args: Dict[str, str]):
    """:func:`host_call` of a query (it changes nothing): it waits QUERY_TIMEOUT."""
    return host_call(session, host, fn, args, xapi.QUERY_TIMEOUT)


NAME_WAIT = 5.0  # seconds, at least, for the master to name a host whose plugin did not answer


def host_call(session, host: str, fn: str, args: Dict[str, str], seconds: float):
    """:func:`plugin_result` that waits ``seconds`` for the host's answer.

    xapi gives a plugin no deadline: a member whose plugin hangs holds the master's
    forwarded call open.  If the master still answers, the silence is that host's:
    a XapiError HOST_TIMEOUT, passed over like a host that is down.  If the master does
    not answer either, it is the one wedged: XapiTimeout, the whole command's failure."""
    try:
        return json.loads(xapi.call_plugin(session, host, fn, args, timeout=seconds))
    except xapi.XapiTimeout:
        # as long as the call had (a start near its deadline must not wait CALL_TIMEOUT for it), but
        # NAME_WAIT at least: a master slow for an instant is not taken for a wedged one
        with deadline(session, max(seconds, NAME_WAIT)):
            name = xapi.call(session.xenapi.host.get_name_label, host)  # read by the master alone
    raise xapi.XapiError([HOST_TIMEOUT, "host {} did not answer {} within {:g} s (the pool master did)".format(
        shown(name), fn, seconds)])


def fit_key(placement: dict, host_record: dict, home: bool = False) -> tuple:
    """Smaller is better: fewer nodes, closer, no fallback; then ``home`` (the VM's affinity
    host: ``xe vm-start`` would start it there, and a fit as good must not send it elsewhere),
    more headroom, fewer VMs."""
    return (len(placement["nodes"]), placement["max_distance"], placement["fallback"], not home,
            -placement["headroom"], len(host_record.get("resident_VMs", [])), host_record.get("name_label", ""))


def host_named(session, name: str) -> Tuple[str, dict]:
    """(ref, record) of the one enabled host whose UUID (or ref) or name is ``name``.
    xapi does not keep names unique: a name two hosts share is refused, as is one no
    enabled host has, naming the hosts that could be meant."""
    records = xapi.call(session.xenapi.host.get_all_records)
    wanted = name.strip()
    by_id = [ref for ref, rec in records.items() if wanted.lower() in (ref.lower(), rec["uuid"].lower())]
    matches = by_id or [ref for ref, rec in records.items() if rec["name_label"] == wanted]
    enabled = sorted((rec["name_label"], rec["uuid"]) for rec in records.values() if rec.get("enabled"))
    if len(matches) > 1:
        raise InvalidArgument("host", "{} hosts are called {}".format(len(matches), shown(wanted)),
                              "one of their UUIDs: " + ", ".join(sorted(records[r]["uuid"] for r in matches)))
    allowed = "an enabled host's name or UUID: " + (", ".join("{} ({})".format(n, u) for n, u in enabled)
                                                    or "none is enabled")
    if not matches:
        raise InvalidArgument("host", "no host called {}".format(shown(wanted)), allowed)
    ref = matches[0]
    if not records[ref].get("enabled"):
        raise InvalidArgument("host", "host {} is disabled".format(shown(wanted)), allowed)
    return ref, records[ref]


def host_label(record: dict, records: Dict[str, dict]) -> str:
    """A host as people read it: its name, or with its UUID where another host shares the name."""
    shared = sum(1 for rec in records.values() if rec["name_label"] == record["name_label"]) > 1
    return "{} ({})".format(record["name_label"], record["uuid"]) if shared else record["name_label"]


def _within(budget: Optional[StartDeadline], session, step: str):
    """Plain XenAPI calls of ``step``: within what is left of ``budget``, if there is one."""
    return contextlib.ExitStack() if budget is None else budget.within(session, xapi.CALL_TIMEOUT, step)


def candidates(session, uuid: str, only_host: Optional[str] = None,
               passed_over: Optional[Dict[str, str]] = None,
               left_out: Optional[List[str]] = None,
               budget: Optional[StartDeadline] = None) -> List[Tuple[tuple, str, dict]]:
    """(fit, host ref, dry-run placement) for every enabled host that can take the VM, best
    first.  ``passed_over``: host refs to leave out, with why (a start refused there).
    ``left_out``: gets "host: why" for each host that could not take it or did not answer.
    ``budget``: the deadline of the start asking (StartTimeout once it is gone)."""
    with _within(budget, session, "listing the pool's hosts"):
        everyone = xapi.enabled_hosts(session)
        hosts = everyone if only_host is None else dict([host_named(session, only_host)])
        vm = xapi.vm_ref(session, uuid)
        home = xapi.call(session.xenapi.VM.get_affinity, vm)  # its home server, or OpaqueRef:NULL
    found, refusals, capacity_only = [], [], True
    invalid: List[xapi.XapiError] = []
    for ref, record in sorted(hosts.items(), key=lambda kv: (kv[1]["name_label"], kv[1]["uuid"])):
        label = host_label(record, everyone)
        if passed_over and ref in passed_over:
            refusals.append("{}: {}".format(label, passed_over[ref]))
            capacity_only = False
            continue
        try:
            with _within(budget, session, "VM.assert_can_boot_here on host {}".format(label)):
                xapi.call(session.xenapi.VM.assert_can_boot_here, vm, ref)
            wait = xapi.QUERY_TIMEOUT if budget is None else budget.wait(
                xapi.QUERY_TIMEOUT, "the dry-run place on host {}".format(label))
            placement = host_call(session, ref, "place", {"vm": uuid, "dry_run": "true"}, wait)
        except xapi.XapiError as err:
            if xapi.not_the_hosts(err):
                raise
            if err.code == "NUMA_NO_CAPACITY":
                refusals.append("{}: {}".format(label, " ".join(err.params[:1])))
                continue
            if err.code in XAPI_NO_ROOM:
                refusals.append("{}: {}".format(label, " ".join([err.code, *err.params[:2]])))
                continue
            if err.code == "NUMA_INVALID_ARGUMENT":
                # about this host (a node or CPU it lacks: hosts differ) or about the VM
                # (a bad policy: every host says the same); the next host may take it
                invalid.append(err)
                refusals.append("{}: {}".format(label, " ".join(err.params[1:2] or err.params)))
                capacity_only = False
                continue
            if err.code.startswith("NUMA_") and err.code not in HOST_UNAVAILABLE:
                raise  # about the VM: every host would say so
            refusals.append("{}: {}".format(label, " ".join([err.code, *err.params[:2]])))
            capacity_only = False
            continue
        found.append((fit_key(placement, record, ref == home), ref, placement))
    if left_out is not None:
        left_out.extend(refusals)
    if budget is not None and budget.left() <= 0:  # (the last host's answer cut short by it)
        raise budget.timeout()
    if not found:
        if invalid and len(invalid) == len(refusals) and all(e.params == invalid[0].params for e in invalid):
            raise invalid[0]  # every host refused the VM for the same reason: it is the VM's
        error = NoCapacity if capacity_only else NoHost
        raise error("no host can take the VM: " + "; ".join(refusals), refusals)
    return sorted(found, key=lambda c: c[0])


def vm_start(session, vm_name_or_uuid: str, only_host: Optional[str] = None,
             deadline: float = START_DEADLINE, force_said: str = FORCE_SAID) -> dict:
    """Start the VM on the pool's host with the best NUMA fit (see the module), all of it
    within ``deadline`` seconds: StartTimeout (NUMA_START_TIMEOUT) names the step that ran
    into it; a place made by then is released (within UNDO_S more), except once
    VM.start_on is under way (the VM may still be starting: its placement is kept).
    ``force_said``: how the caller's user releases another host's place of the VM, which a
    refusal of it offers (:func:`_said_here`)."""
    budget = StartDeadline(vm_name_or_uuid, deadline)
    with budget.within(session, xapi.CALL_TIMEOUT, "reading the VM"):
        vm, uuid = xapi.vm_ref_by_name_or_uuid(session, vm_name_or_uuid)
    _halted(session, vm, vm_name_or_uuid, uuid, budget)  # (refused before the VM is held: nothing written)
    with start_hold.holding(session, vm, uuid, budget) as token:  # a second start is refused, never undoes this one
        _halted(session, vm, vm_name_or_uuid, uuid, budget)  # again: a start that held it may have ended meanwhile
        held = start_hold.plugin_args(uuid, token)  # this start's place and release: its hold lets them through
        _release_earlier_place(session, vm, held, budget)
        return _place_and_start(session, vm, held, only_host, budget, force_said)


def _halted(session, vm: str, name: str, uuid: str, budget: StartDeadline) -> dict:
    """Refuse a VM that is not Halted, or one xapi never starts (a template or snapshot), in the
    command's words, before any host is asked, the VM held or anything released; the record read."""
    with budget.within(session, xapi.CALL_TIMEOUT, "reading the VM"):
        record = xapi.vm_record(session, vm)
    not_a_control_domain(record, "{} ({})".format(shown(name), uuid))  # (Running: xapi started it with the host)
    kind, state = never_starts(record), record["power_state"]
    if kind:
        raise InvalidArgument("vm", "{} ({}) is a {}: xapi never starts one".format(shown(name), uuid, kind),
                              "a VM that can start (start a clone of it: xe vm-clone, or vm-install from a template)")
    if state != "Halted":
        raise InvalidArgument("vm", "{} ({}) is {}: vm-start starts a halted VM".format(shown(name), uuid, state),
                              "a Halted VM (xapi-numa vm-placement VM shows where one runs)")
    return record


def _said_here(session, vm: str, uuid: str, host_uuid: str, budget: StartDeadline, force_said: str) -> None:
    """A host's place refused the VM (NUMA_INVALID_ARGUMENT or NUMA_VM_BUSY) in its plugin's words,
    offering its callers its arguments (``dry_run=true``, ``force=true``): the refusals of the VM's
    state (changed since :func:`_halted`: started meanwhile by xapi's own vm-start, say) and of another
    host's place of it (one its release there did not undo) are said in this command's words, from
    the record read again (``force_said``: how the caller's user releases that place); returns if
    neither refuses it now (that refusal is then the answer)."""
    record = _halted(session, vm, budget.vm, uuid, budget)
    with budget.within(session, xapi.CALL_TIMEOUT, "reading which host placed the VM"):
        not_placed_elsewhere(session, record, uuid, host_uuid, force_said)


def _place_and_start(session, vm: str, held: Dict[str, str], only_host: Optional[str], budget: StartDeadline,
                     force_said: str) -> dict:
    """:func:`vm_start`'s rounds: rank the hosts, place on the best, VM.start_on there, settle;
    ``held``: the plugin's arguments for a place or release of the VM by this start."""
    uuid = held["vm"]
    tried: List[str] = []
    refused: Dict[str, str] = {}  # hosts where xapi refused the start itself: not asked again
    for attempt in range(MAX_ATTEMPTS):
        ranked = candidates(session, uuid, only_host, refused, budget=budget)
        fit, host, _ = ranked[0]
        with budget.within(session, xapi.CALL_TIMEOUT, "reading the chosen host"):
            record = xapi.call(session.xenapi.host.get_record, host)
        name = record["name_label"]
        wait = budget.wait(xapi.PLACE_TIMEOUT, "the place on host {}".format(name))
        try:
            placement = plugin_result(session, host, "place", held, wait)
        except xapi.XapiError as err:
            if err.code == "NUMA_NO_CAPACITY":  # another start took it since the dry run
                tried.append(name)
                continue
            if err.code in HOST_UNAVAILABLE:  # gone (or its plugin broke) since its dry run: as a refused start
                # a plugin killed after reserving leaves its pin
                _release_quietly(session, host, held, budget.undo_wait(xapi.PLACE_TIMEOUT))
                refused[host] = "place failed: " + " ".join([err.code, *err.params[:2]])
                tried.append(name)
                continue
            if err.code in ("NUMA_INVALID_ARGUMENT", "NUMA_VM_BUSY"):
                _said_here(session, vm, uuid, record["uuid"], budget, force_said)
            raise
        except BaseException:  # interrupted (Ctrl-C) while the host may have placed it
            _release_quietly(session, host, held, budget.undo_wait(xapi.PLACE_TIMEOUT))
            raise
        # Concurrent starts may have taken the room the dry run saw: if this
        # placement is now worse than what the dry run promised (more nodes,
        # farther, a fallback), give it back and rank the hosts again.
        if (fit_key(placement, record)[:3] > fit[:3] and attempt < MAX_ATTEMPTS - 1
                and (len(ranked) > 1 or attempt == 0)):
            plugin_result(session, host, "release", held, budget.undo_wait(xapi.PLACE_TIMEOUT))
            tried.append(name)
            continue
        try:
            wait = budget.wait(xapi.LONG_CALL_TIMEOUT, "VM.start_on on host {}".format(name))
        except BaseException:  # nothing left for the start itself: the place is undone
            _release_quietly(session, host, held, budget.undo_wait(xapi.PLACE_TIMEOUT))
            raise
        try:
            with waiting(session, wait):
                xapi.call(session.xenapi.VM.start_on, vm, host, False, False)
        except ConnectionError as err:
            if budget.left() <= 0:
                raise budget.timeout("the VM may still be starting there, and its placement there is kept "
                                     "(xapi-numad settles it once it runs; if it did not start, the next "
                                     "vm-start places it afresh)") from None
            raise _start_unanswered(err, record, uuid) from None
        except BaseException as err:
            _release_quietly(session, host, held, budget.undo_wait(xapi.PLACE_TIMEOUT))  # reservation and pin
            if not isinstance(err, xapi.XapiError):
                raise
            if xapi.not_the_hosts(err):  # (its place there released, as for any refused start)
                raise xapi.XapiError([err.code, *err.params], "VM.start_on of {} on {} refused: {} {} (about the "
                                     "VM, not the host: no other host is tried)".format(
                                         uuid, name, err.code, " ".join(err.params))) from None
            if err.code in XAPI_NO_ROOM:  # filled up since the dry run: ranked again, as NUMA_NO_CAPACITY
                tried.append(name)
                continue
            refused[host] = "VM.start_on refused: " + " ".join([err.code, *err.params[:2]])
            tried.append(name)
            continue
        result = {"vm": uuid, "host": name, "host_uuid": record["uuid"], "placement": placement,
                  "settled": None, "settle_error": None, "attempts": attempt + 1}
        try:
            wait = budget.wait(xapi.PLACE_TIMEOUT, "the settle on host {}".format(name))
            result["settled"] = plugin_result(session, host, "settle", {"vm": uuid}, wait)
        except Exception as err:  # noqa: BLE001 - the VM runs: a settle that failed is no failed start
            result["settle_error"] = _settle_error(err, record, placement)
        return result
    if refused:
        raise NoHost("could not start {} on {}: {}".format(uuid, ", ".join(tried), "; ".join(refused.values())),
                     tried)
    raise NoCapacity(f"hosts {', '.join(tried)} filled up while starting {uuid}", tried)


def _settle_error(err: Exception, record: dict, placement: dict) -> dict:
    """What :func:`vm_start` answers when the VM started but ``settle`` failed: it runs,
    boot-pinned, with its ``numa_placed_*`` keys, which is what xapi-numad looks for."""
    error = [err.code, *err.params] if isinstance(err, xapi.XapiError) else (
        [err.code, err.message] if isinstance(err, NumaError) else [type(err).__name__, str(err)])
    return {"error": error, "message": "the VM is running on {}, still boot-pinned to nodes {}; settling it failed "
            "({}); xapi-numad on that host settles it on its next look".format(
                record["name_label"], ",".join(map(str, placement["nodes"])), " ".join(error[:2]))}


def _start_unanswered(err: Exception, record: dict, uuid: str) -> NumaError:
    """xapi gave no answer to ``VM.start_on`` (wedged past the deadline, or gone): the VM may
    still be starting there, so its placement stays (released, it would run unplaced)."""
    return NumaError("no answer from xapi to VM.start_on of {} on {} ({}): the VM may still be starting there, "
                     "and its placement there is kept (xapi-numad settles it once it runs; if it did not start, "
                     "the next vm-start places it afresh)".format(uuid, record["name_label"], err))


def _release_quietly(session, host: str, held: Dict[str, str], seconds: Optional[float] = None,
                     force: bool = False) -> None:
    """Undo a place on ``host`` (its reservation and the boot pin; with ``force``, a pin set by
    any host) after a start that did not happen, waiting ``seconds`` (PLACE_TIMEOUT); best
    effort, the original failure is the one reported.  ``held``: the release's arguments."""
    try:
        plugin_result(session, host, "release", dict(held, **({"force": "true"} if force else {})), seconds)
    except Exception:  # noqa: BLE001 - a broken connection too: the original failure is the news
        pass


def _release_earlier_place(session, vm: str, held: Dict[str, str], budget: StartDeadline) -> None:
    """A ``place`` made earlier (by hand, or a start that failed and could not release)
    holds its host's reservation and pins the VM there: this start places it afresh, so
    that one goes first, on its own host (a place elsewhere would be refused)."""
    with budget.within(session, xapi.CALL_TIMEOUT, "looking for an earlier place of the VM"):
        placer = boot_pin.placing_host(xapi.call(session.xenapi.VM.get_other_config, vm))
        host = xapi.call(session.xenapi.host.get_by_uuid, placer) if placer is not None and xapi.host_known(
            session, placer) else None
    if host is None:
        return
    try:
        plugin_result(session, host, "release", held, budget.wait(xapi.PLACE_TIMEOUT, "releasing an earlier place"))
    except xapi.XapiError as err:
        if err.code != "HOST_OFFLINE":
            return  # best effort: a place the pin still refuses says what is left
        # xapi hears that host no more: its reservation is gone with it (or lapses with its
        # lease), and its pin, refusing a place on every other host, is undone from the master
        with budget.within(session, xapi.CALL_TIMEOUT, "finding the pool master"):
            master = xapi.call(session.xenapi.pool.get_master, xapi.call(session.xenapi.pool.get_all)[0])
        _release_quietly(session, master, held, budget.wait(xapi.PLACE_TIMEOUT, "undoing the pin of an earlier "
                                                                                 "place on a host that is down"), True)
    except Exception:  # noqa: BLE001 - as _release_quietly: the start goes on, and says what it meets
        pass
