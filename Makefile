# Two commands do everything on a fresh machine with Python 3.11:
#   make run    set up .venv and run the main job on the embedded default
#   make test   set up .venv and run the tests
#   make test-bigquery  the bigquery target's build on a local BigQuery emulator (tests/bigquery)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# uv from PATH when there is one, else the copy bootstrapped into the venv with pip.
UV     := $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)
STAMP  := $(VENV)/.installed

export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup run test test-bigquery lint lock lock-bigquery lock-deploy clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@echo "setup: installing the $$(grep -c '^[a-z0-9]' requirements.lock) pinned packages of requirements.lock into $(VENV) (1-3 minutes on a fresh machine) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x "$(UV)" || $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --python $(BIN)/python --compile-bytecode --quiet -r requirements.lock
	$(UV) pip install --python $(BIN)/python --compile-bytecode --quiet --no-deps -e .
	@touch $@
	@echo "setup: done"

run: setup
	$(BIN)/nextbuy demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/nextbuy lint-sql
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup --ignore=tests/bigquery

# dbt build --target bigquery of the whole project on a local BigQuery emulator, twice.
# The emulator gets its own venv, .venv-bqemulator (tests/bigquery/emulator.py), made on
# first use from tests/bigquery/requirements-emulator.lock.
test-bigquery: setup
	$(BIN)/python -m pytest tests/bigquery

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-pin after changing dependencies in pyproject.toml.
lock:
	@test -x "$(UV)" || $(MAKE) setup
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements.lock

# Re-pin the emulator's venv after changing tests/bigquery/requirements-emulator.in.
lock-bigquery:
	@test -x "$(UV)" || $(MAKE) setup
	$(UV) pip compile tests/bigquery/requirements-emulator.in --python-version 3.11 --quiet --no-annotate -o tests/bigquery/requirements-emulator.lock

# Re-pin what the Kubernetes image adds (deploy/requirements.in), within requirements.lock's
# pins; after `make lock` too (tests/deploy checks the two agree).
lock-deploy:
	@test -x "$(UV)" || $(MAKE) setup
	$(UV) pip compile deploy/requirements.in -c requirements.lock --python-version 3.11 --quiet --no-annotate -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .venv-bqemulator .nextbuy
