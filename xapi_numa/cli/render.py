"""Tables for people: the query rows of :mod:`xapi_numa.ops.queries` as text."""
import sys
import time
from typing import Sequence

from xapi_numa.core.units import format_size


def cell(value: object) -> str:
    """A value as one table cell: characters that are not printable (newlines, tabs, escape
    codes, line separators, bidi overrides) are shown escaped as Python writes them (``\\n``,
    ``\\x1b``), so a domain name cannot split a row, shift its columns or drive the terminal.
    Characters standard output cannot encode (an ASCII locale) are escaped here too, not
    by the stream: a table measures its columns on the text as it will be written."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:  # a stream naming no codec Python knows: written as it is
        return text


def clock_time(when: float) -> str:
    """A moment (Unix time) as local date and time: a lease lasts up to 24 h, so its end
    may be tomorrow, and a time of day alone would not say which day."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[cell(h) for h in headers]] + [[cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def render_topology(report: dict) -> str:
    nodes = table(["node", "cpus", "memory", "free", "claimed", "reserved", "claimable"],
                  [[n["id"], n["cpus"], format_size(n["memory_total"]), format_size(n["memory_free"]),
                    format_size(n["memory_claimed"]), format_size(n["memory_reserved"]),
                    format_size(n["memory_claimable"])] for n in report["nodes"]])
    ids = [n["id"] for n in report["nodes"]]
    dist = table(["distance"] + [str(i) for i in ids],
                 [[i] + row for i, row in zip(ids, report["distances"])])
    offers = "scheduler: {}\nfeatures: {}".format(report.get("scheduler", "?"), ", ".join(
        "{}={}".format(k, v) for k, v in sorted(report.get("features", {}).items())) or "none")
    host_wide = report.get("memory_claimed_host_wide", 0)
    if host_wide:  # on no node: "claimable" is bounded by what the host has left after it
        offers += "\nclaimed host-wide: {} (on no node; it bounds every node's claimable)".format(
            format_size(host_wide))
    dma = [(n["id"], n.get("memory_dma_free", 0)) for n in report["nodes"] if n.get("memory_dma_free")]
    if dma:  # claimable, but Xen gives a build that memory once every node is out of the rest
        offers += "\nin Xen's DMA zone (claimable, but given to a VM only once every node is out of the rest): {}".format(
            ", ".join("node {} {}".format(node, format_size(size)) for node, size in dma))
    return nodes + "\n\n" + dist + "\n\n" + offers


def render_vcpus(rows: Sequence[dict]) -> str:
    hosts = any("host" in r for r in rows)  # a pool's rows: which host each is on
    return table((["host"] if hosts else []) + ["domid", "name", "vcpu", "cpu", "node", "state", "hard", "soft",
                                                "outside-soft"],
                 [([r["host"]] if hosts else []) + [r["domid"], r["name"], r["vcpu"], r["cpu"],
                                                    "?" if r["node"] is None else r["node"],
                                                    r["state"], r["hard"], r["soft"],
                                                    "yes" if r["outside_soft"] else ""] for r in rows])


def render_memory(rows: Sequence[dict]) -> str:
    nodes = sorted({n for r in rows for n in r["nodes"]}, key=int)
    return table(["domid", "name"] + ["node{}".format(n) for n in nodes] + ["total"],
                 [[r["domid"], r["name"]] + [format_size(r["nodes"].get(n, 0)) for n in nodes]
                  + [format_size(r["total"])] for r in rows])


def render_top(report: dict) -> str:
    nodes = table(["node", "busy", "demand", "used", "free", "reserved"],
                  [[n["id"], "{}/{}".format(n["busy_cpus"], n["cpus"]),
                    "{:.1f}/{}".format(n.get("cpu_demand", 0.0), n["cpus"]), format_size(n["memory_used"]),
                    format_size(n["memory_free"]), format_size(n["memory_reserved"])] for n in report["nodes"]])
    vms = table(["domid", "name", "home", "memory", "local", "outside-soft", "time outside", "demand"],
                [[v["domid"], v["name"] + (" (paused)" if v["paused"] else ""),
                  ",".join(map(str, v["home_nodes"])) or "-", format_size(v["memory"]),
                  "{:.0f}%".format(100 * v["local_share"]), "{}/{}".format(v["outside_soft"], v["vcpus"]),
                  "{:.0f}%".format(100 * v.get("outside_soft_share", 0.0)), "{:.1f}".format(v.get("cpu_demand", 0.0))]
                 for v in report["vms"]])
    over = report.get("outside_over")
    if over:  # the share is of top's own samples: say over how many
        vms += ("\ntime outside: share of running vCPUs outside soft affinity " + (
            "at this one moment (without --once, over the refreshes)" if over["refreshes"] == 1 else
            "over {} refreshes, {:.0f} s".format(over["refreshes"], over["seconds"])))
    moves = report.get("home_moves") or {}
    tail = "\n\nhome moves by the rebalancer: " + (", ".join("{} {}".format(n, k) for k, n in sorted(moves.items()))
                                                  or "none")
    return nodes + "\n\n" + vms + tail
