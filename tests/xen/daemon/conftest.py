"""Fixtures for the xapi-numad test on real Xen: 3 nodes, guests in a cpupool over nodes 1-2.

The pool's scheduler comes from dom0's command line (``poolsched=``): one per
boot.  Guests are not destroyed at the end: destroying a domain of a credit1
cpupool on a credit2 host panicked Xen 4.17 here (csched2_free_domdata from
sched_destroy_domain), so the boot simply powers off.
"""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from xenlib import xl  # noqa: E402

POOL_CPUS = ["2", "3", "4", "5"]


def pool_scheduler() -> str:
    with open("/proc/cmdline") as f:
        m = re.search(r"\bpoolsched=(credit2|credit)\b", f.read())
    return m.group(1) if m else "credit2"


@pytest.fixture(scope="session")
def numa_pool():
    """A cpupool "numa" over nodes 1 and 2 with the scheduler under test; dom0 keeps node 0."""
    scheduler = pool_scheduler()
    for cpu in POOL_CPUS:
        xl("cpupool-cpu-remove", "Pool-0", cpu)
    cpus = ", ".join(f'"{c}"' for c in POOL_CPUS)
    with open("/tmp/numa-pool.cfg", "w") as f:
        f.write(f'name = "numa"\nsched = "{scheduler}"\ncpus = [{cpus}]\n')
    xl("cpupool-create", "/tmp/numa-pool.cfg")
    return scheduler
