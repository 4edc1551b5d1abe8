# xapi-numa: everything a fresh machine needs goes through these targets.
# The Makefile makes its own virtualenv in .venv and installs what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all demo test test-py36 bench xen-test xen-test-dom0 xen-test-daemon xen-test-hvm native native-test ocaml ocaml-test install uninstall clean rpm dom0-lib

all: test

# setup.py's test extra asks for the zig packaging/dom0-lib.sh pins: a new pin installs again.
$(STAMP): setup.py packaging/dom0-lib.sh
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a virtualenv: on Debian run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/xapi-numa demo

# (the OCaml stubs' build and unit tests run inside it: tests/test_ocaml_stubs.py)
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The whole suite again on the oldest Python this machine has (dom0s run 3.6): a venv with the
# last versions of the test tools for 3.6, and the package from this tree.  Skipped with a
# message where there is no 3.6 (pyenv's, or python3.6 on PATH).  Left out: the static 3.6
# check (vermin, run by make test) and the C and OCaml tests, which build and run C and OCaml
# the same whichever Python starts them.
PY36 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.6*/bin/python3.6) $(shell command -v python3.6 2>/dev/null))
VENV36 := .venv36
$(VENV36)/.installed:
	$(PY36) -m venv $(VENV36)
	$(VENV36)/bin/python -m pip install --quiet --disable-pip-version-check 'pip==21.3.1'
	$(VENV36)/bin/python -m pip install --quiet --disable-pip-version-check 'pycparser==2.21' 'attrs==22.2.0' \
	    'cffi==1.15.1' 'pytest<7.1' 'hypothesis<6.32' XenAPI
	$(VENV36)/bin/python tests/py36_scripts.py $(VENV36)/bin $(CURDIR)
	@touch $@

test-py36:
	@if [ -z "$(PY36)" ]; then echo "test-py36: no Python 3.6 on this machine: skipped"; \
	else $(MAKE) --no-print-directory $(VENV36)/.installed && \
	    PATH=$(CURDIR)/$(VENV36)/bin:$$PATH PYTHONPATH=$(CURDIR) $(VENV36)/bin/python -m pytest -q \
	        -p no:cacheprovider --ignore=tests/test_py36.py --ignore=tests/test_native_c.py \
	        --ignore=tests/test_ocaml_stubs.py tests; fi

bench: $(STAMP)
	$(BIN)/python bench/run.py

# libxenuma through cffi (needs libxen-dev); rebuilt if the venv predates the headers.
# Built by pip install -e; built again when its C is newer than it (the real-Xen tests ship it).
native: $(STAMP)
	@so=$$(ls xapi_numa/_libxenuma*.so 2>/dev/null | head -n 1); \
	if [ -z "$$so" ] || [ -n "$$(find libxenuma/src libxenuma/SOURCES libxenuma/build_cffi.py -newer $$so)" ]; then \
	  rm -rf $$so build/temp.*; $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'; fi
	@ls xapi_numa/_libxenuma*.so >/dev/null 2>&1 || { echo "libxenuma not built: install libxen-dev"; exit 1; }

# The C library's own unit tests (console-dump parser); no Xen needed.
native-test: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_native_c.py

# The OCaml binding (ocaml-stubs/, for xenopsd) over the same C; its unit tests run against a
# fake libxenctrl.  Skipped with a message where dune is not installed (.ci/run installs it).
ocaml:
	@if command -v dune >/dev/null; then dune build --root ocaml-stubs; \
	else echo "ocaml: dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib): skipped"; fi

ocaml-test:
	@if command -v dune >/dev/null; then dune build --root ocaml-stubs && dune runtest --root ocaml-stubs --force; \
	else echo "ocaml-test: dune not installed (apt-get install ocaml-nox ocaml-dune ocaml-findlib): skipped"; fi

# The same C as a plain shared library.
LIBXENUMA_SRC := $(addprefix libxenuma/src/,$(shell grep -v '^\#' libxenuma/SOURCES))

build/libxenuma.so: $(LIBXENUMA_SRC) $(wildcard libxenuma/src/*.h)
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Werror -o $@ $(LIBXENUMA_SRC) -lxenctrl -lxenforeignmemory -lxentoollog -ldl

# The same C once for every Xen 4.17 dom0 (glibc 2.17, zig cc, only Xen's headers), loaded
# through cffi's ABI mode: build/dom0/libxenuma.so and the libxenuma.h it was built from.
# A file with what it is made of, so that a second make rpm or make xen-test with nothing
# changed builds nothing: the C files and headers, the list of C files, the script (which
# holds the zig pin: a new zig rebuilds) and libxen-dev (reinstalled or upgraded: its file
# list is rewritten).  dom0-lib.sh puts the library in place only once it passed its checks.
# `make dom0-lib` is the same, by name.
DOM0_LIB := build/dom0/libxenuma.so
ZIG_VERSION := $(shell sed -n 's/^ZIG_VERSION=//p' packaging/dom0-lib.sh)
DOM0_LIB_INPUTS := $(LIBXENUMA_SRC) $(wildcard libxenuma/src/*.h) libxenuma/SOURCES packaging/dom0-lib.sh \
	$(wildcard /var/lib/dpkg/info/libxen-dev.list /var/lib/dpkg/info/libxen-dev:*.list)
dom0-lib: $(DOM0_LIB)

$(DOM0_LIB): $(DOM0_LIB_INPUTS) | $(STAMP)
	@[ "$$($(BIN)/python -m ziglang version 2>/dev/null)" = "$(ZIG_VERSION)" ] || \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check 'ziglang==$(ZIG_VERSION)'
	sh packaging/dom0-lib.sh build/dom0 $(BIN)/python

# Present on every XenServer / XCP-ng dom0: there `make install` refuses and points to the RPM.
XENSOURCE_INVENTORY ?= /etc/xensource-inventory

# An x86_64 RPM for XenServer 8.4 / XCP-ng 8.3 / XenServer 9 dom0s (needs rpmbuild: Debian's rpm).
rpm: $(DOM0_LIB) | $(STAMP)
	$(BIN)/python packaging/build_rpm.py --lib build/dom0 --out build/rpm

# Real Xen 4.17 under QEMU, the suites run in dom0 (root needed): the native layer and
# page moves on 2 nodes, then xapi-numad on 3 nodes; each under credit2 and credit1.
# The dom0 suite also runs build/dom0/libxenuma.so (dom0-lib, the RPM's very file) on stock Xen.
xen-test: native $(DOM0_LIB)
	$(BIN)/python tests/xen/harness.py --suite all

xen-test-dom0: native $(DOM0_LIB)
	$(BIN)/python tests/xen/harness.py --suite dom0

xen-test-daemon: native
	$(BIN)/python tests/xen/harness.py --suite daemon

xen-test-hvm: native
	$(BIN)/python tests/xen/harness.py --suite hvm

# A xapi host that is not a XenServer/XCP-ng dom0 (a source build of xapi): the package, the xapi
# plugin and the daemon's unit (not the metrics unit, nor the irqbalance script: the RPM has those).
# On a XenServer/XCP-ng dom0 it refuses: install the RPM there.
# Where the host's xapi already gives Python a XenAPI module (a source build installs a bare
# XenAPI.py, which pip does not see as installed), PyPI's is not installed over it: the
# package goes in without dependencies, and these (setup.py's install_requires less XenAPI) first.
HOST_DEPS := 'attrs>=22.2' 'cffi>=1.15'
# What install writes, and uninstall removes only where it is that file.  In a recipe after
# $(PYTHON_PATHS): $$exe is the Python's interpreter, $$scripts where pip puts its launchers.
INSTALLED_PLUGIN = $(DESTDIR)/etc/xapi.d/plugins/numa
INSTALLED_UNIT = $(DESTDIR)/etc/systemd/system/xapi-numad.service
PYTHON_PATHS = exe=$$($(PYTHON) -c 'import sys; print(sys.executable)') && \
	scripts=$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
# where this Python imports xapi_numa from, if that is not its site-packages (pip install -e)
export WHERE_FROM = import os, sysconfig, xapi_numa; \
	d = os.path.dirname(os.path.dirname(os.path.realpath(xapi_numa.__file__))); \
	print("" if d in {os.path.realpath(sysconfig.get_path(k)) for k in ("purelib", "platlib")} else d)
PLUGIN_TEXT = sed "1s|^\#!.*|\#!$$exe|" plugins/numa
UNIT_TEXT = sed "s|/usr/local/bin/|$$scripts/|" packaging/xapi-numad.service
install:
	@if [ -e $(XENSOURCE_INVENTORY) ]; then echo "this is a XenServer/XCP-ng dom0 ($(XENSOURCE_INVENTORY)): pip would put PyPI's XenAPI over dom0's own; install the RPM instead (make rpm, then rpm -Uvh build/rpm/xapi-numa-*.rpm)"; exit 1; fi
	@if xenapi=$$($(PYTHON) -c 'import XenAPI; print(XenAPI.__file__)' 2>/dev/null); then \
	    echo "keeping this host's XenAPI ($$xenapi): PyPI's is not installed"; \
	    $(PYTHON) -m pip install $(HOST_DEPS) && $(PYTHON) -m pip install --no-deps .; \
	else $(PYTHON) -m pip install .; fi
	@# the plugin runs on the Python pip installed into, and the unit names the daemon where pip put it
	@$(PYTHON_PATHS) && \
	{ [ -x "$$scripts/xapi-numad" ] || { echo "make install: pip put no xapi-numad in $$scripts"; exit 1; }; } && \
	mkdir -p $(DESTDIR)/etc/xapi.d/plugins $(DESTDIR)/etc/systemd/system && \
	$(PLUGIN_TEXT) > $(INSTALLED_PLUGIN) && chmod 0755 $(INSTALLED_PLUGIN) && \
	$(UNIT_TEXT) > $(INSTALLED_UNIT) && chmod 0644 $(INSTALLED_UNIT) && \
	echo "installed $(INSTALLED_PLUGIN) (on $$exe) and $(INSTALLED_UNIT) ($$scripts/xapi-numad)"

# Undoes `make install` (give it the same PYTHON and DESTDIR): pip's xapi-numa (its modules
# and launchers), the plugin and the daemon's unit.  The dependencies stay: they may have
# been there before, or be used by others.  It refuses, changing nothing, where a plugin or
# unit is not the file `make install` writes for this Python, where this Python imports the
# package from elsewhere than its site-packages (pip install -e), and where the daemon's
# unit is running or enabled (stop it first: the RPM's removal stops it and hands back
# dom0's backend work).
uninstall:
	@if [ -e $(XENSOURCE_INVENTORY) ]; then echo "this is a XenServer/XCP-ng dom0 ($(XENSOURCE_INVENTORY)): xapi-numa comes from its RPM here: rpm -e xapi-numa"; exit 1; fi
	@$(PYTHON_PATHS) && \
	for file in $(INSTALLED_PLUGIN) $(INSTALLED_UNIT); do \
	    case $$file in *.service) text() { $(UNIT_TEXT); } ;; *) text() { $(PLUGIN_TEXT); } ;; esac; \
	    if [ -e "$$file" ] && ! text | cmp -s - "$$file"; then \
	        echo "make uninstall: $$file is not the file make install writes for $$exe: not ours to remove (nothing was removed)"; exit 1; fi; \
	done && \
	where=$$(cd / && PYTHONPATH= $(PYTHON) -c "$$WHERE_FROM" 2>/dev/null); \
	if [ -n "$$where" ]; then \
	    echo "make uninstall: $$exe runs xapi_numa from $$where, not from its site-packages (pip install -e?): make install did not put it there (nothing was removed)"; exit 1; fi; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && \
	    { systemctl is-active --quiet xapi-numad.service || systemctl is-enabled --quiet xapi-numad.service; } 2>/dev/null; then \
	    echo "make uninstall: xapi-numad.service is running or enabled: systemctl disable xapi-numad; systemctl stop xapi-numad; $$scripts/xapi-numad --hand-back (puts dom0's backend threads and IRQs back); then make uninstall again (nothing was removed)"; exit 1; fi; \
	if $(PYTHON) -m pip show -q xapi-numa >/dev/null 2>&1; then $(PYTHON) -m pip uninstall -y -q xapi-numa || exit 1; \
	    echo "removed xapi-numa from $$exe (its launchers in $$scripts with it)"; fi; \
	for file in $(INSTALLED_PLUGIN) $(INSTALLED_UNIT); do \
	    if [ -e "$$file" ]; then rm -f "$$file" && echo "removed $$file" || exit 1; fi; \
	done; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload 2>/dev/null || :; fi; \
	echo "kept: its dependencies (attrs, cffi, pycparser; XenAPI where pip installed it), which others may use"

clean:
	rm -rf $(VENV) $(VENV36) build *.egg-info .pytest_cache .hypothesis xapi_numa/_libxenuma*
