# Entry points (see README "Quick start"): `make demo`, `make test` (lint, then the suite) and `make lint`.
# Both create .venv on first use with Python 3.11 and install the project with its dev extra.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	# the HEAR validator for tests/mast_core/test_hear_validator.py, without the TensorFlow it
	# declares but uses only for TensorFlow models (platform notes)
	$(VENV)/bin/pip install --quiet --no-deps hearvalidator==2021.0.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mast demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The suite starts a few hundred Python processes (Ray workers, job drivers, `mast` runs) that
# import this project: with bytecode caching on, only the first compiles it (0.25 s each; this
# machine's environment sets PYTHONDONTWRITEBYTECODE).
test: lint
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/encoders.py

clean:
	rm -rf $(VENV) .pytest_cache
