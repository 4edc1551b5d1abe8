"""The pure core: values and decisions, no I/O.

CPU sets, units, the topology, policies, Xen's allocator arithmetic,
placement, and the planners that turn a snapshot of a host into actions.
Nothing here reads or changes the world; everything above builds on it.
"""
