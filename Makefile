# Everything installs itself: a fresh machine needs only Python 3.11+, pip and make.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
VENV ?= .venv
VENV2 ?= .venv-airflow2
PYTEST_ARGS ?=

UV = $(VENV)/bin/uv

.PHONY: install install-airflow2 demo test lint typecheck test-airflow3 test-airflow2 clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade uv

$(VENV)/.installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(VENV)/bin/python -e ".[dev]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(VENV2)/.installed: pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(VENV)/bin/python $(VENV2)
	$(UV) pip install --quiet --python $(VENV2)/bin/python -e ".[dev]" "apache-airflow==$(AIRFLOW2_VERSION)"
	touch $@

install: $(VENV)/.installed

install-airflow2: $(VENV2)/.installed

demo: install
	$(VENV)/bin/python scripts/demo.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

test-airflow3: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Airflow 2.11: the unit tests and the example DAGs.
test-airflow2: install-airflow2
	$(VENV2)/bin/python -m pytest -m airflow2 $(PYTEST_ARGS)

test: lint typecheck test-airflow3 test-airflow2

clean:
	rm -rf $(VENV) $(VENV2) .pytest_cache .mypy_cache .ruff_cache

# Further targets (benchmarks, reliability runs) live beside this file, one topic a file.
-include mk/*.mk
