# xapi-numa: everything a fresh machine needs goes through these targets.
# The Makefile makes its own virtualenv in .venv and installs what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all demo test bench install clean

all: test

$(STAMP): setup.py
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a virtualenv: on Debian run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/xapi-numa demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/run.py

install:
	$(PYTHON) -m pip install .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
