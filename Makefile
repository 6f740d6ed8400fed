# Two entry points (see README): `make demo` runs the main job, `make test` runs the tests.
# Both build .venv from the locked requirements on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit system-deps bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Byte-compiled once here: where PYTHONDONTWRITEBYTECODE is set, every run would
	@# otherwise compile each imported module again (seconds of a small area's run).
	$(BIN)/python -m compileall -q -j 0 coverage api
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tuoyu demo

system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite (slow, browser and PostgreSQL tests included) with doctests, measuring
# test coverage of tuoyu and tuoyu_api (coverage.py; printed at the end).
unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --cov --cov-report=term:skip-covered --cov-report=xml:.cache/coverage.xml

# Fast loop while developing: lint, types and the tests not marked slow/browser/postgres.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -x -m "not slow and not browser and not postgres"

test: $(STAMP) system-deps lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements.lock

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
