# fitfleet: `make test` runs the whole suite against real services; `make demo` runs the embedded demo.
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: test demo services bootstrap lint

services:
	bash scripts/services.sh

bootstrap:
	bash scripts/bootstrap.sh

test: services bootstrap
	$(PYTHON) -m pytest $(PYTEST_ARGS)

demo: bootstrap
	.venv/bin/fitfleet demo

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
