"""Placement quality on start/stop traces: our engine against xenopsd and libxl.

``trace`` makes the seeded hosts and traces, ``libxl_baseline`` (and
``bench/xenopsd_baseline.py``) re-implement libxl's and xenopsd's placement
from their sources, ``policies`` adapts every
rule to one decision interface, ``replay`` runs a trace through Xen's
allocator model and measures where memory and vCPUs land; ``hindsight``
checks, on one trace, what single-node choices reach when the future is
known (not a rule: no engine knows when a VM stops); ``sampled_rollout``
runs that rollout over futures drawn from the past, and ``make_room``
checks what moving small VMs' pages aside to keep a VM on one node would
reach (a check, not a rule of the engine).
"""
