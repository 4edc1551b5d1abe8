"""The OCaml binding (ocaml-stubs/): builds with dune and passes its unit tests
against the fake libxenctrl, stock and patched (error paths ENOSYS, EPERM,
ENOMEM; no leak over 10,000 calls with Gc.compact between them).

Skipped where dune is not installed; in CI (CI=true) a missing dune fails.
"""
import os
import re
import shutil
import subprocess

import pytest
from conftest import needs

STUBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ocaml-stubs")
DUNE = shutil.which("dune")

if DUNE is None and os.environ.get("CI") == "true":
    pytest.fail("dune is missing in CI: .ci/run installs ocaml-nox ocaml-dune ocaml-findlib", pytrace=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The stubs built and their unit tests run once, in a build directory of their own:
    dune 2.9 locks none, and make test, make test-py36 and the real-Xen image build
    (.ci/run runs them at once) all build these stubs."""
    build = str(tmp_path_factory.mktemp("ocaml") / "_build")
    proc = subprocess.run([DUNE, "build", "--root", STUBS, "--build-dir", build,
                           "@install", "@runtest", "--force",
                           "examples/numa_placement.exe", "test/xenuma_check.exe"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
    return proc, os.path.join(build, "default")


@needs(DUNE is not None, "dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib)")
def test_dune_build_and_runtest(built):
    proc, _ = built
    assert proc.returncode == 0, proc.stdout
    # both runs (stock and patched fake) report, and nothing failed
    counts = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert len(counts) == 2 and all(int(p) >= 34 and int(f) == 0 for p, f in counts), proc.stdout
    assert proc.stdout.count("10000 rounds: 0 handles open") == 2, proc.stdout


@needs(DUNE is not None, "dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib)")
def test_the_c_library_of_the_stubs_exports_its_header_functions_only(built):
    """dllxenuma_c.so, which the stubs load: libxenuma's internal helpers stay inside it."""
    from test_native_c import exported_functions, header_functions

    proc, default = built
    assert proc.returncode == 0, proc.stdout
    assert exported_functions(os.path.join(default, "lib", "dllxenuma_c.so")) == header_functions()


def run_example(built, *args):
    """examples/numa_placement.exe over the stock fake libxenctrl (domain 1 exists)."""
    proc, default = built
    assert proc.returncode == 0, proc.stdout
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(default, "test", "stock"))
    return subprocess.run([os.path.join(default, "examples", "numa_placement.exe")] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


@needs(DUNE is not None, "dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib)")
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_the_example_says_a_domain_does_not_exist(built, dry_run):
    """It died of an uncaught Xenuma.Error from the claim (a dry run even planned for the
    missing domain and exited 0); now it says so and exits 1, nothing claimed."""
    out = run_example(built, "999", "100", *dry_run)
    assert out.returncode == 1 and out.stderr == "numa_placement: no domain 999 on this host\n"
    assert out.stdout == ""


@needs(DUNE is not None, "dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib)")
@pytest.mark.parametrize("args", [["abc", "100"], ["1", "0"], ["-1", "100"], ["1", "100", "--force"], ["1"]])
def test_the_example_answers_bad_arguments_with_its_usage(built, args):
    out = run_example(built, *args)
    assert out.returncode == 2 and out.stderr.startswith("usage: numa_placement DOMID MEMORY_MIB")
    assert "exception" not in out.stderr


@needs(DUNE is not None, "dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib)")
def test_the_example_places_a_domain_that_exists(built):
    out = run_example(built, "1", "100")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("plan: nodes 0\nclaim: ") and "affinity: soft on CPUs of nodes 0" in out.stdout
