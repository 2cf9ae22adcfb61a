# servicectl: `make up` runs the platform, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export SERVICECTL_DATA_DIR ?= $(CURDIR)/var

.PHONY: up test test-fast test-faults bootstrap docker lint typecheck check demo bench \
        registry-gc schemathesis clean cluster-up cluster-down test-multihost

up: docker ## install what is missing, start everything, print how to use it
	$(PY) -m deploy up

test: docker ## every test, against real servers started by the fixtures
	$(PY) -m pytest -q -ra

test-fast: bootstrap ## unit tests only (no servers)
	$(PY) -m pytest -q tests/unit

test-faults: docker ## the fault-injection tests alone
	$(PY) -m pytest -q -ra -m faults

test-multihost: docker ## the tests on a 3-node Swarm in network namespaces, alone
	$(PY) -m pytest -q -ra -m multihost

cluster-up: bootstrap ## a 3-node Swarm (dockerd per network namespace) to try by hand
	$(PY) -m deploy.cluster up

cluster-down: bootstrap ## remove everything cluster-up made
	$(PY) -m deploy.cluster down

bootstrap:
	@deploy/bootstrap.sh

docker: bootstrap
	@deploy/ensure-dockerd.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: bootstrap
	$(VENV)/bin/mypy

check: lint typecheck test

demo: docker ## build, push and deploy the example service with the CLI (after `make up`)
	examples/demo.sh

bench: docker ## benchmarks against their baselines; prints a table (about 10 minutes)
	$(PY) -m bench

registry-gc: bootstrap ## free the disk space of deleted images (stops the registry briefly)
	$(PY) -m deploy registry-gc

schemathesis: docker ## fuzz the API from /openapi.json; fails on any server error
	$(PY) -m pytest -q -ra tests/integration/test_schemathesis.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
