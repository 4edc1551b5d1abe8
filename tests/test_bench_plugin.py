"""bench/bench_plugin.py runs the plugin's calls as xapi would and refuses a wrong answer
(one run each here; its figures are for ``make bench``, not judged by a test)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_plugin  # noqa: E402


def test_the_bench_reports_both_calls_against_its_baseline():
    results = bench_plugin.run(runs=1)
    assert [r.name.split(", ")[1] for r in results] == ["unknown function", "what-if place"]
    assert all(r.met is None and r.ratio > 0 and "baseline python -c pass" in r.detail for r in results)


def test_the_bench_refuses_an_answer_it_did_not_expect():
    """A plugin call that answered otherwise than the bench expects is not timed as one."""
    call = bench_plugin.xmlrpc.client.dumps(("OpaqueRef:bench", {}), "no_such_function")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": bench_plugin.REPO}
    with pytest.raises(RuntimeError, match="UNKNOWN_XENAPI_PLUGIN_FUNCTION"):
        bench_plugin.timed([bench_plugin.interpreter(), bench_plugin.PLUGIN, call], env, "Success")
