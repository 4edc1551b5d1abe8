"""Every global name a function of xapi_numa reads is defined in its module.

The plugin imports each function's use cases inside the function (its start-up cost), and two
of them came to read a module the function did not import: ``place``'s check of its two forms
(``_one_form``) read ``start_hold`` and ``release`` read ``xapi``, each a NameError, so that every
what-if ``place`` (vcpus, memory) failed, and a ``release`` on a host with no state database yet.
A name read at run time only is found here without running it (the functions' bytecode)."""
import builtins
import dis
import importlib
import os
import types
from typing import Iterator, List, Tuple

import pytest

import xapi_numa

ROOT = os.path.dirname(xapi_numa.__file__)


def module_names() -> List[str]:
    names = []
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py") and name != "__main__.py":
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3]
                names.append(rel.replace(os.sep, ".").replace(".__init__", ""))
    return sorted(names)


def globals_read(code: types.CodeType) -> Iterator[Tuple[str, str]]:
    """(function, name) for each global name read inside a function of the module ``code``."""
    stack = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while stack:
        inner = stack.pop()
        for ins in dis.get_instructions(inner):
            if ins.opname == "LOAD_GLOBAL":
                yield inner.co_name, str(ins.argval)
        stack.extend(c for c in inner.co_consts if isinstance(c, types.CodeType))


@pytest.mark.parametrize("name", module_names())
def test_every_global_a_function_reads_is_defined(name):
    try:
        module = importlib.import_module(name)
    except ImportError as err:  # (the native binding where it is not built)
        pytest.skip(str(err))
    with open(module.__file__, encoding="utf-8") as f:
        code = compile(f.read(), module.__file__, "exec")
    undefined = sorted({(fn, g) for fn, g in globals_read(code) if g not in vars(module) and not hasattr(builtins, g)})
    assert not undefined, undefined


def test_the_check_sees_an_undefined_name():
    code = compile("def f():\n    return start_hold.X\n", "m.py", "exec")
    assert list(globals_read(code)) == [("f", "start_hold")]
