"""The simulated Xen host: a product feature, faithful to what Xen does.

* :mod:`.model`     - host, domain and vCPU state; one step of simulated time
* :mod:`xapi_numa.xenalloc` - Xen's page allocator arithmetic (shared with the planner)
* :mod:`.credit1`   - the credit scheduler (per-pCPU run queues)
* :mod:`.credit2`   - the credit2 scheduler (per-socket run queues)
* :mod:`.loads`     - guest load profiles (idle, busy, steady, bursty, diurnal; how memory-bound)
* :mod:`.perf`      - the performance model: work done from CPU time and where memory is
* :mod:`.toolstack` - what ``xl create`` adds on top (libxl 4.17's automatic NUMA placement)
* :mod:`.scenarios` - seeded workloads for the rebalancer's benchmark and demo, and their metrics
* :mod:`.store`     - the state file shared by processes, under a file lock
* :mod:`.backend`   - the Hypervisor port over a state file

When the simulator and real Xen disagree, real Xen wins: fix the model and
say so next to the fix.
"""
