# Distributions: `make dist` builds the sdist and the wheel into dist/ and checks them (twine's
# metadata check, and tests/test_dist.py's listing of what each must hold). `make test-wheel` installs
# the wheel, not the source tree, into a fresh venv on the newest Airflow line and runs the
# quickstart DAG against the emulator started from the installed package (scripts/demo.py), from a
# directory where the source tree cannot be imported; `make test` runs it.

WHEEL_VENV ?= .venv-wheel

.PHONY: dist test-wheel

dist: install
	rm -rf dist
	$(UV) build --quiet --out-dir dist
	$(VENV)/bin/twine check --strict dist/*
	DPC_DIST_DIR=dist $(VENV)/bin/python -m pytest -q tests/test_dist.py

test-wheel: dist
	rm -rf $(WHEEL_VENV)
	$(UV) venv --quiet --python $(VENV)/bin/python $(WHEEL_VENV)
	$(UV) pip install --quiet --python $(WHEEL_VENV)/bin/python "$$(ls dist/*.whl)[emulator]" \
		"apache-airflow==$(AIRFLOW_$(NEWEST_LINE))" --constraint constraints/airflow-$(NEWEST_LINE).txt
	cd "$$(mktemp -d)" && $(abspath $(WHEEL_VENV))/bin/python $(abspath scripts/demo.py) --require-installed
