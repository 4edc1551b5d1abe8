"""Review 11 (docs against code): `sim create` refusing a name another domain has names
the field and what is allowed, as docs/cli.md's command line promises of every refusal
(it said only "a domain called 'A' already exists")."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "xapi_numa.cli"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)


def test_a_name_taken_is_refused_naming_what_is_allowed(tmp_path):
    path = str(tmp_path / "host.json")
    assert cli("sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G").returncode == 0
    assert cli("sim", "create", path, "A", "--vcpus", "1", "--memory", "16M").returncode == 0
    before = open(path, "rb").read()
    done = cli("sim", "create", path, "A", "--vcpus", "1", "--memory", "16M")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("xapi-numa: error: name: a domain called 'A' already exists (allowed: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and open(path, "rb").read() == before
