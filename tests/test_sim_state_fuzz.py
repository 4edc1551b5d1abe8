"""A damaged simulated-host state file: one clear error naming the file and the field, never a crash.

A fuzzing review found about 70 places where a state file with one value of the wrong
type or out of range (a run queue's ``load_last`` as a string, a ``wait_ticks`` of 1e400,
a domain's ``vnuma`` of 0) ended in "internal error" while the host was loaded or run.
Here a real state file (credit and credit2, with guests, claims, a vNUMA layout, a page
move and a dead mover's batch record) has one value anywhere in it replaced, and is then
used through the port as the CLI uses it.  Each use either works, or fails with a
NumaError; a refused file is a StateError naming the file and the field, and is left as it
was.  The mutations are a fixed seeded set, so a failure names them and can be replayed.
"""
import json
import os
import random
import signal
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NumaError, StateError
from xapi_numa.ops import queries

MiB = 1 << 20
OTHER_CPU = "__another_cpu__"  # a hard affinity of one CPU, not the vCPU's processor
INF = "__1e400__"  # written as the JSON number 1e400, which Python reads as inf
HUGE = 1 << 70
MUTATIONS = ("string", "float", "huge", "negative", "zero", "plus-one", "minus-one", "null", "list", "dict",
             "inf", "nan", "bool", "drop")
SEED, COUNT = 20261205, 400
TIME_LIMIT = 5  # seconds for one mutated file's every use: more is a hang


def build_host(path: str, scheduler: str) -> None:
    """A host whose file holds a value in every field the loaders read."""
    hv = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), scheduler, 3, dom0_vcpus=2,
                            dom0_memory=64 * MiB)
    a = hv.create("a", 2, 32 * MiB, dtype="pvh", load="bursty:200ms:0.5:mem=0.7")
    b = hv.create("b", 2, 32 * MiB, dtype="pvh", load="busy", soft=frozenset({0, 1}))
    hv.create("c", 1, 16 * MiB, dtype="hvm", load="diurnal:1s:0.1:0.9:at=200ms", paused=True)
    plan = vnuma.plan_follow(hv.topology(), vnuma.GuestSpec("pvh", 2, 32 * MiB), [0, 1])
    hv.set_vnuma(a, plan, vnuma.memory_ranges(plan))
    shell = hv.create_shell("d", 1, 16 * MiB, dtype="hvm")  # a claim is on a domain still to be built
    hv.claim(shell, 100, 1)
    hv.run(0.5)
    hv.hold(b, 0x105)  # a frame a backend holds: its move leaves a stale old frame
    hv.grant(b, 0x120)
    hv.move_pages(b, list(range(0x100, 0x110)), 1)
    hv.move_pages(a, list(range(0x200, 0x208)), 0, fault="die-after-release")  # a batch record
    hv.run(0.2)


# --- the mutations ----------------------------------------------------------------------------
Path = Tuple[Any, ...]


def paths(value: Any, at: Path = ()) -> List[Path]:
    """Every value's path in the tree (the root's excepted)."""
    out: List[Path] = [at] if at else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        out.extend(paths(sub, at + (key,)))
    return out


def pattern(data: Any, path: Path) -> Path:
    """The path with the index into any long list (the RNG's state, a run list) made '*':
    a value is drawn per pattern first, so the RNG's 625 numbers count as one place."""
    out, node = [], data
    for key in path:
        out.append("*" if isinstance(node, list) and len(node) > 8 else key)
        node = node[key]
    return tuple(out)


def mutated(value: Any, how: str) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    table = {"string": str(value) if number else "x", "float": 2.5, "huge": HUGE,
             "negative": -abs(value) - 1 if number else -1, "zero": 0,
             "plus-one": value + 1 if number else 1, "minus-one": value - 1 if number else -1,
             "null": None, "list": [], "dict": {}, "inf": INF, "nan": float("nan"),
             "bool": (not value) if isinstance(value, bool) else True}
    return table[how]


def plan_mutations(bases: Dict[str, Any], seed: int, count: int) -> List[Tuple[str, Path, str]]:
    """(base, path, mutation) triples: a pattern drawn evenly, then one place of it."""
    rng = random.Random(seed)
    places: Dict[Tuple[str, Path], List[Path]] = {}
    for name, data in sorted(bases.items()):
        for p in paths(data):
            places.setdefault((name, pattern(data, p)), []).append(p)
    keys = sorted(places, key=repr)
    out = []
    for _ in range(count):
        name, pat = keys[rng.randrange(len(keys))]
        out.append((name, rng.choice(places[(name, pat)]), rng.choice(MUTATIONS)))
    return out


def write_mutated(path: str, data: Any, where: Path, how: str) -> None:
    data = json.loads(json.dumps(data))
    node = data
    for key in where[:-1]:
        node = node[key]
    if how == "drop":  # the key, or the list's entry, left out
        del node[where[-1]]
    else:
        node[where[-1]] = mutated(node[where[-1]], how)
    with open(path, "w") as f:
        f.write(json.dumps(data).replace('"{}"'.format(INF), "1e400"))


# --- using a host as the CLI does ---------------------------------------------------------------
def uses(hv: SimHypervisor) -> List[Callable[[], Any]]:
    """The port's calls the CLI, the daemon and the mover make, in an order that reaches each
    loader: the first read refuses a damaged file; the rest run on a file it accepted."""
    calls: List[Callable[[], Any]] = [hv.domains, hv.topology, hv.node_memory, hv.placement_view,
                                      hv.perf_counters, lambda: queries.topology_report(hv, {}),
                                      lambda: queries.vcpu_rows(hv), lambda: queries.memory_rows(hv)]
    for domid in (0, 1, 2, 3):
        calls += [lambda d=domid: queries.vm_memory(hv, d), lambda d=domid: hv.memory_map(d),
                  lambda d=domid: hv.locality_stats(d), lambda d=domid: hv.node_affinity(d),
                  lambda d=domid: hv.move_blockers(d)]
    calls += [lambda: hv.recover_move(1), lambda: hv.release_hold(2, 0x105),
              lambda: hv.move_pages(2, list(range(0x300, 0x308)), 1),
              lambda: hv.set_vcpu_affinity(1, 0, soft=frozenset({2, 3})),
              lambda: hv.create("new", 1, 4 * MiB, load="steady:0.5"), lambda: hv.run(0.5),
              lambda: hv.pause(2), lambda: hv.unpause(2), lambda: hv.destroy(3), lambda: hv.run(0.3)]
    return calls


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("no answer in {} s".format(TIME_LIMIT))


def crash_site(err: BaseException) -> str:
    """Where in xapi_numa an exception came from: its type and innermost frame of the package."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "xapi_numa" in f.filename]
    where = frames[-1] if frames else traceback.extract_tb(err.__traceback__)[-1]
    return "{} at {}:{} ({})".format(type(err).__name__, where.filename.split("xapi_numa")[-1].lstrip("/"),
                                     where.lineno, where.name)


def check_refusal(err: StateError, path: str, before: bytes) -> Optional[str]:
    """What is wrong with a refusal of a damaged file, if anything."""
    message = err.message
    if path not in message:
        return "does not name the file: " + message
    said = message.partition(" is damaged: ")[2]
    if not said.startswith(("host.", "host ", "unsupported state version")):
        return "refused without naming the field: " + message.replace(path, "PATH")
    with open(path, "rb") as f:
        if f.read() != before:
            return "changed the file it refused: " + message
    return None


def exercise(path: str) -> Optional[str]:
    """None if every use of the file worked or failed cleanly, else what went wrong."""
    with open(path, "rb") as f:
        before = f.read()
    hv = SimHypervisor(path)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        for call in uses(hv):
            try:
                call()
            except StateError as err:
                if " is damaged: " in err.message:
                    return check_refusal(err, path, before)
                # the file was taken, and the model then made a state the store will not write
                return "refused a write: " + err.message.replace(path, "PATH")
            except NumaError:
                pass  # a refusal of the call itself (no such domain, no memory, ...)
    except Exception as err:  # what the user would see as "internal error"
        return crash_site(err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return None


def run_mutations(bases: Dict[str, Any], folder: str, plan: Sequence[Tuple[str, Path, str]]) -> Dict[str, list]:
    """Crash site (or bad refusal) -> the mutations that reached it."""
    found: Dict[str, list] = {}
    for i, (name, where, how) in enumerate(plan):
        path = os.path.join(folder, "m{}.json".format(i))
        write_mutated(path, bases[name], where, how)
        problem = exercise(path)
        if problem is not None:
            found.setdefault(problem, []).append((name, where, how))
        for leftover in (path, path + ".lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return found


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Dict[str, Any]:
    folder = tmp_path_factory.mktemp("bases")
    out = {}
    for scheduler in ("credit", "credit2"):
        path = str(folder / "{}.json".format(scheduler))
        build_host(path, scheduler)
        with open(path) as f:
            out[scheduler] = json.load(f)
    return out


def test_the_unmutated_files_pass_every_use(bases, tmp_path):
    for name, data in bases.items():
        path = str(tmp_path / "{}.json".format(name))
        with open(path, "w") as f:
            json.dump(data, f)
        assert exercise(path) is None


def test_a_damaged_state_file_is_refused_clearly_never_a_crash(bases, tmp_path):
    found = run_mutations(bases, str(tmp_path), plan_mutations(bases, SEED, COUNT))
    report = ["{} ({} mutations, e.g. {})".format(site, len(seen), seen[0]) for site, seen in sorted(found.items())]
    assert not found, "{} crash sites or unclear refusals:\n".format(len(found)) + "\n".join(report)


@pytest.mark.parametrize("where,value,says", [
    (("sched", "rqs", 1, "load_last"), "5", "host.sched.rqs[1].load_last must be an integer, not a string"),
    (("domains", 1, "wait_ticks"), INF, "host.domains[1].wait_ticks must be an integer, not inf"),
    (("domains", 1, "vnuma"), 0, "host.domains[1].vnuma must be an object, not an integer"),
    # what the model asserts at every step, and loaded silently: pages out of thin air, a vCPU
    # queued outside its hard affinity
    (("free", 0), 1, "host.free[0] (1) and the domains' node_pages[0] and overhead_pages[0] ({used}) must add "
                     "up to node 0's 262144 pages, not {sum}"),
    (("domains", 1, "vcpus", 0, 1), OTHER_CPU, "host.domains[1].vcpus[0][3] (processor) must be a CPU of its "
                                                "hard affinity ({other}), not {processor}"),
])
def test_the_reviews_examples_are_one_line_from_the_cli(bases, tmp_path, capsys, where, value, says):
    """Each was "internal error" (exit 70): now the state error's exit 1, the file and the
    field named, the file left as it was."""
    path = str(tmp_path / "host.json")
    data = json.loads(json.dumps(bases["credit2"]))
    node = data
    for key in where[:-1]:
        node = node[key]
    processor = data["domains"][1]["vcpus"][0][3]
    other = (processor + 1) % 4
    node[where[-1]] = 1 << other if value == OTHER_CPU else value
    with open(path, "w") as f:
        f.write(json.dumps(data).replace('"{}"'.format(INF), "1e400"))
    with open(path, "rb") as f:
        before = f.read()
    used = sum(d["node_pages"][0] + d["overhead_pages"][0] for d in data["domains"])
    says = says.format(used=used, sum=used + 1, processor=processor, other=other)
    for argv in (["sim", "run", path, "--seconds", "1"], ["--backend", "sim:" + path, "topology", "--json"],
                 ["--backend", "sim:" + path, "move-memory", "a", "--to", "1", "--dry-run", "--no-xapi"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == "xapi-numa: error: simulated host {} is damaged: {}\n".format(path, says)
    with open(path, "rb") as f:
        assert f.read() == before


# --- the simulated dom0's own file (PATH.dom0/sim-backend.json) ---------------------------------
def dom0_uses(hv: SimHypervisor, path: str) -> List[Callable[[], Any]]:
    """What `backends` and xapi-numad's backend alignment do to the simulated dom0."""
    from xapi_numa.backends.sim.dom0_tree import open_sim_dom0
    dom0 = open_sim_dom0(hv, path)  # (syncs the tree from the host)
    return [dom0.tasks, dom0.irqs, lambda: dom0.tree.backend_load_by_node({0: 0, 1: 1}),
            lambda: [dom0.set_irq(q.irq, q.name, frozenset({1})) for q in dom0.irqs()],
            lambda: hv.run(0.2), dom0.sync, dom0.tasks]


def test_a_damaged_dom0_file_is_refused_clearly_never_a_crash(tmp_path):
    """Its 'threads' as 5 ended in 'internal error: AttributeError' (backends, exit 70)."""
    path = str(tmp_path / "host.json")
    build_host(path, "credit2")
    hv = SimHypervisor(path)
    for call in dom0_uses(hv, path):
        call()
    dom0_file = os.path.join(path + ".dom0", "sim-backend.json")
    with open(dom0_file) as f:
        base = json.load(f)
    found: Dict[str, list] = {}
    for where, how in [(p, h) for (_, p, h) in plan_mutations({"dom0": base}, SEED, 300)]:
        write_mutated(dom0_file, base, where, how)
        try:
            for call in dom0_uses(hv, path):
                call()
        except StateError as err:
            if not err.message.startswith("simulated dom0 {} is damaged: dom0".format(dom0_file)):
                found.setdefault("unclear: " + err.message, []).append((where, how))
        except NumaError:
            pass
        except Exception as err:  # noqa: BLE001 - what a user would see as "internal error"
            found.setdefault(crash_site(err), []).append((where, how))
    assert not found, "\n".join("{} ({} mutations, e.g. {})".format(k, len(v), v[0]) for k, v in sorted(found.items()))


def test_a_soft_affinity_of_no_cpu_is_kept_as_xen_keeps_it(tmp_path):
    """Xen 4.17 takes an empty soft affinity (vcpu_set_soft_affinity checks nothing; only the
    hard one must meet the pool's online CPUs): the model took it too, and then refused to
    write its own state ("the change would damage it")."""
    path = str(tmp_path / "h.json")
    hv = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 1, dom0_vcpus=1,
                            dom0_memory=64 * MiB)
    a = hv.create("a", 2, 32 * MiB, load="busy")
    hv.set_vcpu_affinity(a, 0, soft=frozenset())
    hv.run(0.2)
    assert [sorted(v.soft) for v in hv.vcpus(a)][0] == []
    assert exercise(path) is None
