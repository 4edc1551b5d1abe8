"""Child process of test_dom0_lib_real.py: xapi-numa as the RPM runs it in dom0.

Run as ``python3 dom0_lib_child.py`` with ``PYTHONPATH`` naming only the
overlay's private ``python`` directory (the ``xapi_numa`` package copied the
way build_rpm.py copies it -- no API-mode module -- and cffi/pycparser).  The
backend then falls back to cffi's ABI mode over the ``libxenuma.so`` beside
that directory, found by the RPM's rule, with no environment variable: the
very file ``make dom0-lib`` built on the host.  One process serves a whole
test module (importing the backend parses the header: seconds under QEMU).

Requests on stdin, one JSON object a line: ``{"snippet": ..., "env": {...}}``.
The environment is updated, then the snippet runs with ``hv`` (a
XenHypervisor over that library), ``xen`` (the backend module),
``ffi``/``lib`` and ``plain``, and leaves its answer in ``result``.  Each
answer is one JSON line on stdout: which libxenuma files this process has
mapped (with their sha256), and ``plain(result)`` -- or the traceback.
``plain`` is also what the parent applies to the API-mode build's answers,
so both compare as equal JSON.
"""
import hashlib
import json
import os
import sys
import traceback

import attr


def plain(x):
    """attrs values, sets and bytes as JSON-comparable data (sets sorted, bytes hashed)."""
    if attr.has(type(x)):
        return {k: plain(v) for k, v in attr.asdict(x, recurse=False).items()}
    if isinstance(x, (set, frozenset)):
        return sorted(plain(v) for v in x)
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, bytes):
        return hashlib.sha256(x).hexdigest()
    return x


def mapped_libxenuma():
    """Every file this process mapped whose name says libxenuma (API- or ABI-mode)."""
    with open("/proc/self/maps") as f:
        paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if "libxenuma" in os.path.basename(p))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def answer(hv, xen, request):
    os.environ.update(request.get("env", {}))
    scope = {"hv": hv, "xen": xen, "ffi": xen.ffi, "lib": xen.lib, "plain": plain, "result": None}
    try:
        exec(request["snippet"], scope)
        out = {"result": plain(scope["result"])}
    except Exception:  # the parent shows it as the test's failure
        out = {"error": traceback.format_exc()}
    loaded = mapped_libxenuma()
    out.update(loaded=loaded, sha256={p: sha256(p) for p in loaded}, ffi=type(xen.ffi).__module__,
               package=os.path.dirname(xen.__file__))
    return out


def main():
    from xapi_numa.backends import xen  # the ABI fallback runs here, at import, as on a dom0

    hv = xen.XenHypervisor(dump_interval=0.5)
    for line in sys.stdin:
        print(json.dumps(answer(hv, xen, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
