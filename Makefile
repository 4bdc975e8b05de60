# Threadline: `make demo` runs the whole pipeline on the synthetic sample; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPORT ?= threadline-report.md

.PHONY: demo test install install-dev chromium lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	# torch first and pinned: the CPU build on local disk, never a CUDA build from the index.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e .
	touch $@

# The test doubles (stand-ins, spec validators, the `sleep` stage, fault injection) are a package of
# their own in testing/, installed editable for tests and benchmarks only; the product never imports it.
$(VENV)/.installed-dev: pyproject.toml testing/pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]' -e testing
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/threadline import examples/conversations.jsonl --source demo
	$(BIN)/threadline run --source demo
	$(BIN)/threadline stories --limit 10
	$(BIN)/threadline report --format md -o $(REPORT)

# Browser tests drive Debian's Chromium; install it when missing (CI machines start without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install-dev chromium
	$(BIN)/python -m pytest -q

# Tools own the formatting and the checks: ruff (format and lint), mypy (strict for the engine, stages,
# connectors and exporters; see pyproject.toml) and import-linter (the layers of the README's architecture).
LINTED := src tests testing benchmarks examples
lint: install-dev
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache $(REPORT)
