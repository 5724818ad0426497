# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# Bytecode written ahead: an editable install compiles nothing, and where
# PYTHONDONTWRITEBYTECODE is set every `harness` command would recompile its sources (~0.1 s)
install: $(VENV)/.installed
	@$(BIN)/python -m compileall -q harness

run: install
	$(BIN)/harness run suite.yaml

# The report-safety tests open the reports in headless Chromium (Debian's package).
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "install Chromium (Debian: apt-get install chromium) for the report-safety tests" >&2; exit 1; fi; }

test: install system-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check harness tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs/*/ .pytest_cache
