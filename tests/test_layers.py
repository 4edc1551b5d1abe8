"""The architecture, checked: imports point down only, entry points never import
each other, no import circles, no module over ~400 lines.

Layers, bottom up: errors; core (pure); ports; state and backends (adapters);
ops (use cases, the executor); entry points (cli, plugin, daemon, the rrdd plugin).
"""
import ast
import os
import re

import pytest

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "xapi_numa")
LAYERS = {"errors": 0, "core": 1, "ports": 2, "state": 3, "backends": 3, "ops": 4,
          "cli": 5, "plugin": 5, "daemon": 5, "rrdd_plugin": 5}
ENTRY_POINTS = {"cli", "plugin", "daemon", "rrdd_plugin"}
# Scheduler models that mirror one Xen source file each, said so in their docstrings.
LONG_MODULES = {"backends/sim/credit1.py": "sched/credit.c", "backends/sim/credit2.py": "sched/credit2.c"}
MAX_LINES = 400


def modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                yield os.path.relpath(path, PACKAGE).replace(os.sep, "/"), path


def area(rel: str) -> str:
    return rel.split("/")[0].replace(".py", "")


def imported_areas(path: str):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xapi_numa."):
            yield node.module.split(".")[1], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == "xapi_numa":
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xapi_numa."):
                    yield alias.name.split(".")[1], node.lineno


def test_every_module_has_a_layer():
    unknown = {rel for rel, _ in modules() if area(rel) not in LAYERS and area(rel) not in ("__init__", "_libxenuma")}
    assert not unknown, "modules outside the known layers: {}".format(sorted(unknown))


def test_imports_point_down_and_entry_points_stand_apart():
    bad = []
    for rel, path in modules():
        mine = area(rel)
        if mine not in LAYERS:
            continue
        for theirs, line in imported_areas(path):
            if theirs in ("__version__", "_libxenuma") or theirs == mine:
                continue
            if theirs not in LAYERS:
                continue
            if LAYERS[theirs] > LAYERS[mine] or (theirs in ENTRY_POINTS and mine in ENTRY_POINTS):
                bad.append("{}:{} imports {}".format(rel, line, theirs))
    assert not bad, "\n".join(bad)


def test_the_core_is_pure():
    """No I/O in the core: no os, subprocess, sqlite3, socket, time.sleep, open()."""
    forbidden = re.compile(r"^\s*(import|from)\s+(os|subprocess|sqlite3|socket|fcntl|shutil)\b|time\.sleep|\bopen\(",
                           re.M)
    bad = [rel for rel, path in modules() if rel.startswith("core/")
           and forbidden.search(open(path, encoding="utf-8").read())]
    assert not bad


def test_no_import_circle_between_modules():
    graph = {}
    for rel, path in modules():
        name = "xapi_numa." + rel[:-3].replace("/", ".").replace(".__init__", "")
        tree = ast.parse(open(path, encoding="utf-8").read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xapi_numa"):
                deps.add(node.module)
                deps.update(node.module + "." + a.name for a in node.names)
        graph[name] = deps
    graph = {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}
    # packages depend on nothing through their own __init__ for this check
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    cycles = [c for c in cycles if not all(n.count(".") <= 1 for n in c)]
    assert not cycles, cycles


@pytest.mark.parametrize("rel,path", sorted(modules()))
def test_module_size_and_docstring(rel, path):
    text = open(path, encoding="utf-8").read()
    tree = ast.parse(text)
    if rel.endswith("__main__.py"):
        return
    assert ast.get_docstring(tree), "{} has no docstring saying what it owns".format(rel)
    lines = len(text.splitlines())
    if rel in LONG_MODULES:
        assert LONG_MODULES[rel] in ast.get_docstring(tree), "{} should say which Xen file it mirrors".format(rel)
        return
    assert lines <= MAX_LINES, "{} has {} lines (at most {})".format(rel, lines, MAX_LINES)
