"""Review 11 (docs against code): a plugin argument refused for its length names what is
allowed, as every other refusal does (plugin/args.py: "every refusal ... naming the argument
and what is allowed"; docs/cli.md: one line naming the field and what is allowed)."""
from test_plugin import err, run


def test_an_over_long_argument_is_refused_naming_the_field_and_what_is_allowed(ctx):
    server, session, host, sid = ctx
    details = err(run(server, host, sid, "vm_memory", {"vm": "a" * 1100}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"], details
    assert "(allowed: " in details[2] and "1024" in details[2], details
