# fitfleet: `make demo` runs the embedded demo; `make test` runs the whole suite against real services.
PYTHON := .venv/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test demo services lint

services:
	bash scripts/services.sh

test: services
	bash scripts/bootstrap.sh test
	$(PYTHON) -m pytest $(PYTEST_ARGS)

demo:
	bash scripts/bootstrap.sh demo
	.venv/bin/fitfleet demo $(DEMO_ARGS)

lint:
	bash scripts/bootstrap.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
