"""Every name a function of the package reads from its module is defined there.

The plugin imports its use cases inside each function (plugin/functions.py, "Imports"): a
function that reads a module-level name its own body never imported (``xapi`` in release,
``start_hold`` in place's _one_form) fails only when that path runs, as NameError, which the
plugin answers as an internal failure.  This reads each module's symbol table (no import, no
run): a global a function references must be assigned or imported at module level, or a builtin."""
import builtins
import os
import symtable

from conftest import REPO

PACKAGE = os.path.join(REPO, "xapi_numa")
MODULE_NAMES = {"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__", "__path__"}


def undefined_globals(source: str, path: str) -> list:
    """(function, name, line) for each module-level name a function references that the module
    never assigns nor imports and that is no builtin."""
    top = symtable.symtable(source, path, "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()} | MODULE_NAMES
    found = []

    def walk(table) -> None:
        for child in table.get_children():
            if child.get_type() == "function":
                found.extend((child.get_name(), s.get_name(), child.get_lineno()) for s in child.get_symbols()
                             if s.is_global() and s.is_referenced() and s.get_name() not in defined
                             and not hasattr(builtins, s.get_name()))
            walk(child)

    walk(top)
    return found


def test_the_check_finds_a_name_only_another_function_imports():
    source = "def a():\n    from os import path\n    return path\n\n\ndef b():\n    return path.sep\n"
    assert undefined_globals(source, "m.py") == [("b", "path", 6)]
    assert undefined_globals("import os\n\n\ndef b():\n    return os.sep, len\n", "m.py") == []


def test_every_function_reads_only_names_its_module_defines():
    missing = []
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                missing += [(os.path.relpath(path, REPO),) + hit for hit in undefined_globals(f.read(), path)]
    assert missing == []
