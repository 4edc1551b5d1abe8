"""The plugin's words for a refusal's way out (``dry_run=true``, ``force=true``, ``store=false``)
are written once, in :mod:`xapi_numa.ops.plugin_words`.

The checks shared by the plugin and the CLI take the way out in their caller's words, the plugin's
by default.  Those defaults were spelled where each check stood: ``start_placement`` had its own
``dry_run=true`` and ``force=true``, ``start_hold`` two more ``force=true`` of its own (it cannot
import ``start_placement``, which imports it), and ``vnuma_xapi`` a ``store=false`` inside its
refusal; a change of one wording left the others behind.  No other module of ``ops`` spells an
argument's ``=true`` or ``=false`` now (docstrings aside): each refusal's words live in one place.
"""
import ast
import os
import re

import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.ops import plugin_words, start_hold, start_placement, vnuma_xapi

OPS = os.path.join(os.path.dirname(__file__), "..", "xapi_numa", "ops")
ARGUMENT = re.compile(r"\b\w+=(true|false)\b")


def _spelled(path: str):
    """The string literals of a module that name an argument's ``=true`` or ``=false``, docstrings aside."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else getattr(node, "s", None)  # (3.6: ast.Str)
        if isinstance(text, str) and id(node) not in docstrings and ARGUMENT.search(text):
            yield node.lineno, text


def test_only_plugin_words_spells_the_plugins_arguments_in_ops():
    found = ["{}:{}: {!r}".format(name, line, text) for name in sorted(os.listdir(OPS))
             if name.endswith(".py") and name != "plugin_words.py"
             for line, text in _spelled(os.path.join(OPS, name))]
    assert not found, "\n".join(found)  # before: start_placement, start_hold (twice), vnuma_xapi
    assert {text for _, text in _spelled(os.path.join(OPS, "plugin_words.py"))} == {
        plugin_words.DRY_RUN_SAID, plugin_words.FORCE_SAID, plugin_words.NO_STORE_SAID}


def test_the_shared_checks_default_to_the_plugins_words():
    """(as before) the plugin's callers are told its arguments; the same strings, from the one module"""
    said = start_hold.refuse_by_hand("vm-uuid", "release", "token", 0.0).message
    assert "release with {},".format(plugin_words.FORCE_SAID) in said, said
    template = {"is_a_template": True, "is_a_snapshot": False, "power_state": "Halted"}
    with pytest.raises(InvalidArgument, match="or " + plugin_words.DRY_RUN_SAID):
        start_placement.startable(template, "vm-uuid", False)
    with pytest.raises(InvalidArgument, match="or " + plugin_words.NO_STORE_SAID):
        vnuma_xapi.check_storable(template, "vm-uuid")
