# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

# The official CDA/XDS schemas are data read at run and test time (never copied here): the
# `shared/` folder beside this checkout, or wherever BACKFILL_SHARED_DIR already points.
export BACKFILL_SHARED_DIR ?= $(abspath $(CURDIR)/../shared)

PYTEST_ARGS ?= -n 2

.PHONY: demo test lint unit bench clean install install-dev constraints docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs are pinned by constraints.txt (the versions the tests last ran with), so a fresh clone
# gets those; pyproject.toml keeps the floors. After adding or upgrading a dependency in
# pyproject.toml: `make constraints` (installs what is new without the pins, then freezes the
# venv; `make constraints UPGRADE=--upgrade` moves every package to its newest version first).
CONSTRAINTS := -c constraints.txt

$(VENV)/.runtime: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install $(CONSTRAINTS) -e '.[dev]'
	touch $@ $(VENV)/.runtime

UPGRADE ?=
constraints: $(BIN)/python
	$(PIP) install $(UPGRADE) -e '.[dev]'
	{ echo "# The versions the tests ran with; regenerate with make constraints (see Makefile)."; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt
	touch $(VENV)/.dev $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: $(VENV)/.runtime
	$(BIN)/backfill demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The configuration reference is generated from the settings model (backfill/config_reference.py).
docs: $(VENV)/.runtime
	$(BIN)/python -m backfill.config_reference docs/configuration.md

bench: $(VENV)/.dev
	$(BIN)/python bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis backfill-work
