"""Adapters to the world: real Xen (libxenuma), the simulated host, and xapi
(XenAPI); :mod:`.open` is the composition root that opens the backend a user named."""
