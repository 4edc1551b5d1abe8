"""The schedulers' part of the simulated host's state file (``host.sched``), checked.

Its shape for credit and for credit2 (what their ``to_dict`` writes), and how it fits
the domains' vCPUs, as the models rely on it: a vCPU a pCPU or a run queue names exists
and says it runs or is queued there, each vCPU is named once, and a queued (credit2:
every) vCPU is in the list its own fields point to.  Used by :mod:`.state_schema`.
"""
from typing import Any, Callable, Dict, List, Sequence, Tuple

from xapi_numa.backends.sim.state_shape import (
    COUNT, CPU, SINCE, Context, Damaged, Int, ListOf, Mask, Maybe, Record, Shape, Where, check, found, is_int, is_list)

# positions in a vCPU's row (Vcpu.to_list)
PROCESSOR, RUNNING, QUEUED, RQD = 3, 4, 5, 10
_NAMES = {PROCESSOR: "processor", RUNNING: "running", QUEUED: "queued", RQD: "rqd"}

Vcpus = Dict[Tuple[int, int], Tuple[str, list]]  # (domid, vcpu) -> where its row is, the row


class VcpuKey(Shape):
    """``[domid, vcpu]`` of a vCPU of the host."""

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        if not (is_list(value) and len(value) == 2 and is_int(value[0]) and is_int(value[1])
                and tuple(value) in ctx["vcpus"]):
            raise Damaged(f"{where} must be [domid, vcpu] of a vCPU of this host, not {found(value)}")


KEY = VcpuKey()
CURR = ListOf(Maybe(KEY), per="cpus")  # the vCPU running on each pCPU
CREDIT1 = Record([("curr", CURR), ("runq", ListOf(ListOf(KEY), per="cpus")), ("slice_end", ListOf(Int(), per="cpus")),
                  ("idlers", Mask(empty=True)), ("last_tickle", CPU)],
                 # the stealing bias: per node, as Xen keeps it ("balance_bias", per pCPU and
                 # node, in files written before; read no more)
                 [("node_bias", ListOf(CPU, per="nodes")), ("idle_bias", ListOf(CPU, per="cpus")),
                  ("balance_bias", ListOf(ListOf(CPU, per="nodes"), per="cpus"))])
RUN_QUEUE = Record([("svc", ListOf(KEY)), ("runq", ListOf(KEY)), ("b_avgload", COUNT), ("pick_bias", CPU),
                    ("idle", Mask(empty=True)), ("tickled", Mask(empty=True))],
                   [("load_last", SINCE)])  # (files written before loads were updated lazily lack it)
CREDIT2 = Record([("curr", CURR), ("rqs", ListOf(RUN_QUEUE, per="rqs"))])


def check_scheduler(data: dict, ctx: Context) -> None:
    sched, vcpus = data["sched"], ctx["vcpus"]
    if data["scheduler"] == "credit2":
        check(CREDIT2, sched, "host.sched", ctx)
        rqs = sched["rqs"]
        _check_running(sched["curr"], vcpus)
        # every vCPU is assigned to a run queue (svc); the queued ones wait in its runq
        _check_lists([(f"host.sched.rqs[{i}].svc", rq["svc"]) for i, rq in enumerate(rqs)], vcpus,
                     RQD, lambda v: True)
        _check_lists([(f"host.sched.rqs[{i}].runq", rq["runq"]) for i, rq in enumerate(rqs)], vcpus,
                     RQD, lambda v: v[QUEUED])
    else:
        check(CREDIT1, sched, "host.sched", ctx)
        _check_running(sched["curr"], vcpus)
        # a queued vCPU waits in the queue of the pCPU it is on
        _check_lists([(f"host.sched.runq[{c}]", q) for c, q in enumerate(sched["runq"])], vcpus,
                     PROCESSOR, lambda v: v[QUEUED])


def _field(where: str, i: int) -> str:
    return f"{where}[{i}] ({_NAMES[i]})"


def _check_running(curr: List[Any], vcpus: Vcpus) -> None:
    """The vCPU each pCPU runs says it runs there, and every running vCPU is one of them."""
    for cpu, key in enumerate(curr):
        if key is not None:
            where, v = vcpus[tuple(key)]
            if not v[RUNNING] or v[PROCESSOR] != cpu:
                raise Damaged(f"host.sched.curr[{cpu}] names vCPU {key}, but {where} says it is "
                              f"{'running' if v[RUNNING] else 'not running'} on CPU {v[PROCESSOR]}")
    for key, (where, v) in vcpus.items():
        if v[RUNNING] and v[QUEUED]:
            raise Damaged(f"{where} is both running and queued ({_field(where, RUNNING)} and "
                          f"{_field(where, QUEUED)} are true)")
        if v[RUNNING] and tuple(curr[v[PROCESSOR]] or ()) != key:
            raise Damaged(f"{_field(where, RUNNING)} is true, but host.sched.curr[{v[PROCESSOR]}] does not name it")


def _check_lists(lists: Sequence[Tuple[str, List[list]]], vcpus: Vcpus, home: int,
                 belongs: Callable[[list], bool]) -> None:
    """Each vCPU in list ``i`` belongs in one (``belongs``) and its field ``home`` says ``i``;
    none is named twice; each that belongs in one is in the one its ``home`` says."""
    seen = set()
    for i, (where, keys) in enumerate(lists):
        for j, key in enumerate(keys):
            vwhere, v = vcpus[tuple(key)]
            if tuple(key) in seen:
                raise Damaged(f"{where}[{j}] names vCPU {key} a second time")
            if not belongs(v) or v[home] != i:
                raise Damaged(f"{where}[{j}] names vCPU {key}, but {_field(vwhere, home)} is {v[home]} "
                              f"and {_field(vwhere, QUEUED)} is {str(v[QUEUED]).lower()}")
            seen.add(tuple(key))
    for key, (vwhere, v) in vcpus.items():
        if belongs(v) and key not in seen:
            if 0 <= v[home] < len(lists):
                raise Damaged(f"{lists[v[home]][0]} does not name vCPU {list(key)}, which "
                              f"{_field(vwhere, home)} puts there")
            raise Damaged(f"{_field(vwhere, home)} must be one of 0..{len(lists) - 1}, not {v[home]}")
