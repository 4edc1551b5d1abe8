"""Console scripts for the Python 3.6 test venv (make test-py36): the tests run
``xapi-numa``, ``xapi-numad`` and ``xapi-numa-rrdd`` from beside ``sys.executable``,
and the package is used from this tree, not installed."""
import os
import sys

SCRIPTS = {"xapi-numa": "xapi_numa.cli.main", "xapi-numad": "xapi_numa.daemon",
           "xapi-numa-rrdd": "xapi_numa.rrdd_plugin"}


def main(bindir: str, tree: str) -> int:
    python = os.path.join(bindir, "python")
    for name, module in SCRIPTS.items():
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write("#!{}\nimport sys\nsys.path.insert(0, {!r})\nfrom {} import main\nsys.exit(main())\n".format(
                python, tree, module))
        os.chmod(path, 0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
