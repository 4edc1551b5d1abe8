#!/bin/sh
# Compile every file listed in libxenuma/SOURCES (the one list, also read by
# the cffi build and the Makefile) into the archive and shared object dune
# links into the stubs: libxenuma_c.a and dlllibxenuma_c.so.
set -eu
src=$1
cc=${CC:-cc}
objs=
for f in $(grep -v '^#' "$src/../SOURCES"); do
    o=${f%.c}.o
    $cc -std=gnu11 -O2 -fPIC -Wall -Wextra -Werror -I"$src" -c "$src/$f" -o "$o"
    objs="$objs $o"
done
ar rcs libxenuma_c.a $objs
$cc -shared -o dllxenuma_c.so $objs -lxenctrl -lxenforeignmemory -lxentoollog -ldl
