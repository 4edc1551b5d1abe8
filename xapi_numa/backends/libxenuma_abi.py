"""libxenuma without a compiler on the host: cffi's ABI mode over the prebuilt library.

A XenServer / XCP-ng dom0 has no C compiler, so the API-mode module
(``xapi_numa._libxenuma``, built by setup.py) cannot exist there.  Instead the
RPM ships ``libxenuma.so`` (built once for glibc 2.17 by ``make dom0-lib``)
together with the ``libxenuma.h`` it was built from, and this module opens it
with ``ffi.dlopen`` after declaring the header.  The header travels *beside the
library*, not inside the package, because the declarations must describe that
very binary: a package upgraded without its library (or the reverse) must fail
to load rather than call functions with the wrong layout.

This module owns: where the pair is looked for, how the header becomes cffi
declarations (the same rule the API-mode build in ``libxenuma/build_cffi.py``
uses, which imports :func:`declarations` from here), and opening it.  Failures
are ``ImportError`` naming every place looked at, as for a missing API-mode
module, so :mod:`xapi_numa.backends.open` reports both the same way.
"""
import os
import re
from typing import List, Optional, Sequence, Tuple

LIBRARY = "libxenuma.so"
HEADER = "libxenuma.h"
LIBDIR_ENV = "XAPI_NUMA_LIBDIR"
# cffi's cdef takes `#define NAME <literal>` lines but no include guards or includes.
SKIPPED_PREFIXES = ("#ifndef", "#endif", "#include", "#define LIBXENUMA_H")
# Struct fields this package reads that an older libxenuma lacks: a pair (library and its
# header) from before them loads and lays out calls right, but the adapter dies reading one
# (after a recovery has already removed its batch record), so such a pair is refused here.
REQUIRED_FIELDS = {"struct xn_mig_result": ("granted", "recognised", "max_restored", "max_unknown")}
# (a move that checks the domain's handle once it holds the domain; a scan that sizes its own map)
REQUIRED_FUNCTIONS = ("xn_mig_move_as", "xn_mig_scan_map", "xn_mig_map_free")
# A function declaration of libxenuma.h: it starts its line (comments and continuation lines
# start with '/', '*' or blanks), and its name is the xn_ word before the first '('.
FUNCTION = re.compile(r"^[A-Za-z_][\w \t*]*?\b(xn_\w+)\s*\(", re.M)


class NotBuilt(ImportError):
    """Neither the API-mode module nor the prebuilt library is there (a source checkout
    not built yet), as opposed to a library there that cannot be loaded."""


def declarations(header_text: str) -> str:
    """The cffi declarations of libxenuma.h: the header less its preprocessor lines."""
    lines = header_text.splitlines()
    return "\n".join(line for line in lines if not line.startswith(SKIPPED_PREFIXES))


def functions(header_text: str) -> List[str]:
    """The names of the functions libxenuma.h declares."""
    return FUNCTION.findall(declarations(header_text))


def unexported(lib, names: Sequence[str]) -> List[str]:
    """The names among ``names`` that the opened library does not export.  cffi's ABI mode
    looks a function up only when it is first used, so a library older than its header
    would load and fail on the first call (a recovery may have removed its record by then)."""
    out = []
    for name in names:
        try:
            getattr(lib, name)
        except AttributeError:
            out.append(name)
    return out


def default_dirs() -> List[str]:
    """Where the library and its header are looked for, first match wins.

    ``$XAPI_NUMA_LIBDIR``; then the directory above the package's parent, which
    is the private ``lib`` directory of an RPM install (``/opt/xapi-numa/lib``
    holds ``python/xapi_numa`` and the library); then ``build/dom0`` of a
    source checkout (what ``make dom0-lib`` writes).
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = os.path.dirname(package)
    dirs = [os.path.dirname(parent), os.path.join(parent, "build", "dom0")]
    explicit = os.environ.get(LIBDIR_ENV)
    return ([explicit] if explicit else []) + dirs


def find(dirs: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(library, header) of the first directory holding both, or None."""
    for d in dirs:
        lib_path, header_path = os.path.join(d, LIBRARY), os.path.join(d, HEADER)
        if os.path.isfile(lib_path) and os.path.isfile(header_path):
            return lib_path, header_path
    return None


def missing_fields(ffi) -> List[Tuple[str, str]]:
    """(struct, field) of REQUIRED_FIELDS the declarations lack."""
    out = []
    for struct, fields in sorted(REQUIRED_FIELDS.items()):
        have = {name for name, _ in (ffi.typeof(struct).fields or ())}
        out += [(struct, f) for f in fields if f not in have]
    return out


def load(dirs: Optional[Sequence[str]] = None):
    """Open libxenuma in ABI mode: (ffi, lib), shaped like the API-mode module's pair."""
    dirs = list(default_dirs() if dirs is None else dirs)
    found = find(dirs)
    if found is None:
        raise NotBuilt("libxenuma is not built: no xapi_numa._libxenuma module, and no {} with its {} in {}"
                          .format(LIBRARY, HEADER, ", ".join(dirs)))
    lib_path, header_path = found
    try:
        from cffi import FFI
    except ImportError as err:
        raise ImportError("libxenuma needs cffi to load {}: {}".format(lib_path, err)) from None
    with open(header_path, encoding="utf-8") as f:
        text = f.read()
    ffi = FFI()
    ffi.cdef(declarations(text))
    lacking = missing_fields(ffi) + [("its header", f) for f in REQUIRED_FUNCTIONS if f + "(" not in text]
    if lacking:
        raise ImportError("{} (with {}) is older than this xapi-numa: {} lacks {}; install the library of "
                          "the same release".format(lib_path, header_path, lacking[0][0], ", ".join(
                              f for _, f in lacking))) from None
    try:
        lib = ffi.dlopen(lib_path)
    except OSError as err:  # a missing libxenctrl.so.4.17 lands here: say which file and why
        raise ImportError("cannot load {}: {}".format(lib_path, err)) from None
    absent = unexported(lib, functions(text))
    if absent:
        raise ImportError("{} does not export {}, which {} beside it declares: the library is not the one that "
                          "header was built with; install libxenuma.so and libxenuma.h of the same release as "
                          "this xapi-numa".format(lib_path, ", ".join(absent), header_path))
    return ffi, lib
