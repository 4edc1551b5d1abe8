"""The oldest Python the off-host client installs on: one figure in setup.py, docs/install.md
and pyproject.toml's build requirements.

setup.py's python_requires is what pip checks; docs/install.md's "Off the host" tells the admin;
pyproject.toml's setuptools bound must leave a setuptools that runs on that Python, or
``pip install .`` stops before setup.py is read ("No matching distribution found for
setuptools>=61" on 3.6, seen 2026-12-06: setuptools 61.0.0 declares Requires-Python >=3.7, and
59.6.0 is the last that declares >=3.6, from PyPI's simple index).
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the newest setuptools whose Requires-Python admits each Python (PyPI's data-requires-python)
LAST_SETUPTOOLS = {(3, 6): (59, 6)}


def _read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def _version(text):
    return tuple(int(p) for p in text.split("."))


def floor_problems(setup_py, install_md, pyproject):
    """What disagrees about the oldest Python, as sentences (none: all agree)."""
    problems = []
    found = re.findall(r'python_requires\s*=\s*">=\s*(\d+\.\d+)"', setup_py)
    if len(found) != 1:
        return ["setup.py: {} python_requires=\">=X.Y\", not one".format(len(found))]
    floor = _version(found[0])
    section = install_md.split("## Off the host", 1)[-1] if "## Off the host" in install_md else ""
    said = re.findall(r"Python ≥ (\d+\.\d+)", section)
    if said != [found[0]]:
        problems.append("docs/install.md, Off the host: says Python ≥ {}, setup.py >= {}".format(
            ", ".join(said) or "nothing", found[0]))
    bound = re.findall(r'"setuptools>=(\d+(?:\.\d+)?)', pyproject)
    if floor not in LAST_SETUPTOOLS:
        problems.append("no entry for Python {} in LAST_SETUPTOOLS".format(found[0]))
    elif len(bound) != 1:
        problems.append("pyproject.toml: {} setuptools>= bounds, not one".format(len(bound)))
    elif _version(bound[0]) > LAST_SETUPTOOLS[floor]:
        problems.append("pyproject.toml: setuptools>={} runs on no Python {} (the last that does: {})".format(
            bound[0], found[0], ".".join(map(str, LAST_SETUPTOOLS[floor]))))
    return problems


def test_setup_py_the_install_page_and_the_build_agree():
    assert floor_problems(_read("setup.py"), _read(os.path.join("docs", "install.md")),
                          _read("pyproject.toml")) == []


def test_a_disagreement_is_found():
    setup_py = 'setup(python_requires=">=3.6")'
    page = "## Off the host\n\nOn an admin's machine (Python ≥ 3.6, Linux)"
    build = 'requires = ["setuptools>=59.6", "wheel"]'
    assert floor_problems(setup_py, page, build) == []
    assert floor_problems(setup_py, page.replace("3.6", "3.9"), build) == [
        "docs/install.md, Off the host: says Python ≥ 3.9, setup.py >= 3.6"]
    assert floor_problems(setup_py, page, build.replace("59.6", "61")) == [
        "pyproject.toml: setuptools>=61 runs on no Python 3.6 (the last that does: 59.6)"]
    assert floor_problems(setup_py.replace("3.6", "3.5"), page.replace("3.6", "3.5"), build) == [
        "no entry for Python 3.5 in LAST_SETUPTOOLS"]
