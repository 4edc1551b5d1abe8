"""How a refusal names its way out to the ``numa`` plugin's callers: the plugin's own arguments,
as xe and XenCenter users type them (``xe host-call-plugin ... args:dry_run=true``).

The checks that refuse (:mod:`.start_placement`, :mod:`.start_hold`, :mod:`.vnuma_xapi`) are
shared by the plugin and the CLI; each takes the way out in its caller's words, these by default.
The CLI passes its own (its options: :mod:`xapi_numa.cli.placing`, :mod:`xapi_numa.cli.vnuma`),
never these: its user has no such argument to type.
"""
DRY_RUN_SAID = "dry_run=true"  # place: a dry run, reserving and pinning nothing
FORCE_SAID = "force=true"  # release: also another host's pin, and the place of a pool vm-start holding the VM
NO_STORE_SAID = "store=false"  # vnuma_plan: the plan answered, not kept in the VM's other_config
