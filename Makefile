# One command to run, one to test. Everything else installs itself.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
VENV := .venv
RUN := $(UV) run --frozen

.PHONY: run test test-fast test-reliability reliability-report test-mutants test-container lint typecheck check bench install clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups --quiet
	@touch $@

install: $(VENV)/.synced

## Start the service on http://127.0.0.1:8000 (SQLite and the built-in Codat sandbox by default)
run: install
	$(RUN) bankfeeds migrate
	$(RUN) bankfeeds serve

## The whole test suite (SQLite always; Postgres too when it is reachable)
test: install
	$(RUN) pytest -q $(PYTEST_ARGS)

## The suite without the slow reliability proofs, for a quick loop while developing
test-fast: install
	$(RUN) pytest -q -m "not slow" $(PYTEST_ARGS)

## Only the slow reliability proofs (fault storm, crashes, replicas, outage)
test-reliability: install
	$(RUN) pytest -q -m slow tests/reliability $(PYTEST_ARGS)

## Every reliability proof from a clean slate, then docs/reliability.md from what they measured
## (refused unless the whole run passed)
reliability-report: install
	$(RUN) pytest -q tests/reliability $(PYTEST_ARGS)
	$(RUN) python -m tests.reliability.report

## Break each guarantee on purpose (tests/mutants.py): fails unless its tests notice every one
test-mutants: install
	$(RUN) python -m tests.mutants

## Build the image and run docker-compose.yml for real, then check the running containers.
## Installs Docker with apt and starts its own engine when none answers (root); see
## docs/deployment.md. Needs Postgres on 127.0.0.1:5432 and about 5 GB of disk.
test-container: install
	$(RUN) python -m tests.container.check

lint: install
	$(RUN) ruff check app tests bench migrations
	$(RUN) ruff format --check app tests bench migrations

typecheck: install
	$(RUN) mypy

check: lint typecheck test

bench: install
	$(RUN) python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
