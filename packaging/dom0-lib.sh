#!/bin/sh
# Build libxenuma once for every Xen 4.17 dom0 (XenServer 8.4, XCP-ng 8.3, XenServer 9):
# glibc 2.17 (CentOS 7 based dom0s) through zig's cross toolchain, with only Xen's own
# headers on the include path (never this machine's glibc headers, which would let a
# newer symbol version slip in), then check that nothing needs more than GLIBC_2.17.
#
#   packaging/dom0-lib.sh OUTDIR PYTHON
#
# OUTDIR receives libxenuma.so and the libxenuma.h it was built from (the ABI loader
# reads its declarations from the header beside the library, so the two always match),
# and only once every check below passed: a library that failed one is never left there
# (make would take it for built).
# PYTHON is an interpreter with the `ziglang` package at ZIG_VERSION (make dom0-lib
# installs it; the Makefile and setup.py's test extra read the pin from here, the one place it is
# written, and make rebuilds when this file changes).
set -eu

# The compiler is part of what the bytes are made of: another zig builds other bytes.
ZIG_VERSION=0.17.1

OUT=${1:?usage: dom0-lib.sh OUTDIR PYTHON}
PY=${2:?usage: dom0-lib.sh OUTDIR PYTHON}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC="$HERE/libxenuma/src"
GLIBC_MAX=2.17
TARGET="x86_64-linux-gnu.$GLIBC_MAX"
XENCTRL_WANT=libxenctrl.so.4.17
XENLIBDIR=${XENLIBDIR:-/usr/lib/x86_64-linux-gnu}

command -v dpkg >/dev/null || { echo "dom0-lib: needs Debian's libxen-dev (dpkg not found)" >&2; exit 1; }
dpkg -s libxen-dev >/dev/null 2>&1 || { echo "dom0-lib: install libxen-dev (Xen's headers and libxenctrl)" >&2; exit 1; }
ZIG_HAS=$("$PY" -m ziglang version 2>/dev/null) ||
    { echo "dom0-lib: $PY has no ziglang (pip install ziglang==$ZIG_VERSION)" >&2; exit 1; }
[ "$ZIG_HAS" = "$ZIG_VERSION" ] ||
    { echo "dom0-lib: $PY has zig $ZIG_HAS, not $ZIG_VERSION (pip install ziglang==$ZIG_VERSION)" >&2; exit 1; }

STAGE="$OUT/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE/include" "$STAGE/lib"

# Xen's own headers, exactly the ones libxen-dev ships.
dpkg -L libxen-dev | grep '^/usr/include/.*\.h$' | while read -r h; do
    rel=${h#/usr/include/}
    mkdir -p "$STAGE/include/$(dirname "$rel")"
    cp "$h" "$STAGE/include/$rel"
done

# Only the Xen libraries we link against (their sonames end up in DT_NEEDED).
for l in xenctrl xenforeignmemory xentoollog; do
    ln -sf "$XENLIBDIR/lib$l.so" "$STAGE/lib/lib$l.so"
done

# The C files: the one list in libxenuma/SOURCES.
FILES=$(grep -v '^#' "$HERE/libxenuma/SOURCES" | sed '/^[[:space:]]*$/d' | sed "s|^|$SRC/|")

# -ldl: glibc 2.17 keeps dlopen/dlsym in libdl (run-time lookup of patched libxenctrl calls).
# Two checkouts of one commit build the same bytes (the RPM and the real-Xen suite compare
# the library by sha256), wherever they are and whatever zig's cache holds:
# * --strip-debug: no DWARF.  zig links in objects of its own (glibc's libc_nonshared
#   stat/fstat) that it compiled without our flags and keeps in its cache: their debug
#   information names zig's lib directory (inside the build machine's virtualenv) and the
#   directory the build that first filled the cache ran in, so no prefix map of ours can
#   reach them.  The RPM has no use for DWARF: it ships no debuginfo package and rpmbuild
#   is told not to strip.  The symbol tables stay (cffi needs .dynsym; .symtab names
#   functions in a backtrace).
# * the prefix maps keep the checkout's and the staging directory's paths out of what the
#   C itself may embed (__FILE__).
# shellcheck disable=SC2086
"$PY" -m ziglang cc -ffile-prefix-map="$HERE"=xapi-numa -ffile-prefix-map="$STAGE"=stage -target "$TARGET" -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Werror \
    -isystem "$STAGE/include" -I "$SRC" -L "$STAGE/lib" \
    -Wl,--strip-debug -Wl,-soname,libxenuma.so -o "$STAGE/libxenuma.so" $FILES \
    -lxenctrl -lxenforeignmemory -lxentoollog -ldl
BUILT="$STAGE/libxenuma.so"

# Nothing newer than GLIBC_2.17 (sort -V puts the newest last).
NEWEST=$(objdump -T "$BUILT" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ "$(printf '%s\n%s\n' "$NEWEST" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
    echo "dom0-lib: $OUT/libxenuma.so needs GLIBC_$NEWEST, newer than GLIBC_$GLIBC_MAX (not put in place)" >&2
    rm -rf "$STAGE"; exit 1
fi
# Linked against Xen 4.17's libxenctrl, whose soname names the Xen release and which the RPM
# then requires: another libxen-dev (Debian 13 has 4.20) makes an RPM every dom0 refuses.
XENCTRL=$(objdump -p "$BUILT" | sed -n 's/^ *NEEDED *\(libxenctrl\.so\..*\)$/\1/p')
if [ "$XENCTRL" != "$XENCTRL_WANT" ]; then
    echo "dom0-lib: $OUT/libxenuma.so needs ${XENCTRL:-no libxenctrl}, not $XENCTRL_WANT (XenServer 8.4, XCP-ng 8.3): build with Debian 12's libxen-dev (Xen 4.17)" >&2
    rm -rf "$STAGE"; exit 1
fi
# In place only now, the header first: the library is what make compares its sources with.
cp "$SRC/libxenuma.h" "$OUT/libxenuma.h"
mv -f "$BUILT" "$OUT/libxenuma.so"
rm -rf "$STAGE"
echo "dom0-lib: $OUT/libxenuma.so (newest symbol version GLIBC_$NEWEST, $XENCTRL)"
