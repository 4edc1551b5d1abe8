"""Running C drivers and Python over the fake libxenctrl (libxenuma/tests/fake_xenctrl.c):
what the tests of libxenuma's bounds share."""
import os
import subprocess
import sys

from conftest import missing
from test_native_c import LIB, SRC, TESTS, build_fake_xenctrl, compile_c, library_sources

FAKE_SETTINGS = ("FAKE_XC_FAIL", "FAKE_XC_MAX_GPFN", "FAKE_XC_OFFLINE_NODE")


def fake_env(tmp_path, **settings: str) -> dict:
    """The environment of a run over the stock fake: none of its settings inherited, these set."""
    env = dict(os.environ, LD_LIBRARY_PATH=build_fake_xenctrl(str(tmp_path / "fakes"), False))
    for name in FAKE_SETTINGS:
        env.pop(name, None)
    env.update(settings)
    return env


def run_driver(tmp_path, source: str, env: dict) -> subprocess.CompletedProcess:
    """A C driver (which may include test_pagemove.c) built with the library and run, in tmp_path."""
    driver = tmp_path / "driver.c"
    driver.write_text(source)
    exe = str(tmp_path / "driver")
    compile_c(["-I", SRC, "-I", TESTS, "-o", exe, str(driver), *library_sources(),
               "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    return subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60, env=env, cwd=str(tmp_path))


def run_python(tmp_path, code: str, env: dict) -> subprocess.CompletedProcess:
    """Python code run with this checkout's package (its cffi module built), in tmp_path."""
    try:
        import xapi_numa._libxenuma  # noqa: F401
    except ImportError:
        missing("the cffi module is built by setup.py build_ext")
    return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, env=dict(env, PYTHONPATH=os.path.dirname(LIB)),
                          cwd=str(tmp_path))
