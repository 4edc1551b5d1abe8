"""Use cases: read the world into a snapshot, ask the pure planners, and let
the one executor apply their actions.  Shared by the CLI, the plugin and the daemon."""
