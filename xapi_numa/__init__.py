"""xapi-numa: NUMA placement and balancing for Xen hosts run by XAPI.

Layout (data flows one way: world -> snapshot -> pure decision -> adapter):

* pure core: :mod:`cpuset`, :mod:`units`, :mod:`topology`, :mod:`views`
* the hypervisor port and its values: :mod:`hypervisor`
* adapters: the simulated host (:mod:`xapi_numa.sim`), the real Xen backend
  (native layer, later)
* user surface: :mod:`cli`, :mod:`demo`
"""

__version__ = "0.1.0"
