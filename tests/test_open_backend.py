"""Opening the Xen backend: a library that is there but cannot load says which file and why."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The API-mode module hidden (a dom0 has none), so the prebuilt library is what is loaded.
RUN = ("import sys; sys.modules['xapi_numa._libxenuma'] = None; "
       "from xapi_numa.cli.main import main; sys.exit(main(sys.argv[1:]))")


def xapi_numa(libdir, *args):
    env = dict(os.environ, XAPI_NUMA_LIBDIR=str(libdir), PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", RUN, "--backend", "xen"] + list(args), capture_output=True,
                          text=True, timeout=60, env=env)


def test_a_library_that_cannot_be_loaded_is_named_with_the_reason(tmp_path):
    """On a dom0 whose libxenctrl is missing or not 4.17 the library is there: 'not built,
    use a simulated host' sent admins the wrong way, and the daemon said it every 5 s."""
    (tmp_path / "libxenuma.so").write_bytes(b"not a shared object")
    shutil.copy(os.path.join(ROOT, "libxenuma", "src", "libxenuma.h"), str(tmp_path / "libxenuma.h"))
    proc = xapi_numa(tmp_path, "topology")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot load" in proc.stderr and str(tmp_path / "libxenuma.so") in proc.stderr, proc.stderr
    assert "not built" not in proc.stderr and "sim:PATH" not in proc.stderr, proc.stderr
