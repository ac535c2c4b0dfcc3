# Benchmarks: import cost, cost per call, triggerer scale, token reuse, the API budget and several
# processes on one account (see benchmarks/).
# `make bench` installs the bench extra (the dbt Cloud and HTTP providers) into $(VENV),
# runs every benchmark, prints one table and writes the figures to benchmarks/results/latest.json.
# Pass options through BENCH_ARGS, e.g. `make bench BENCH_ARGS="--only triggers --trigger-reps 1"`.
BENCH_ARGS ?=

.PHONY: bench

$(VENV)/.bench-installed: pyproject.toml constraints/airflow-$(NEWEST_LINE).txt | $(UV)
	$(UV) pip install --quiet --python $(VENV)/bin/python -e ".[dev,bench]" "apache-airflow==$(AIRFLOW_$(NEWEST_LINE))" \
		--constraint constraints/airflow-$(NEWEST_LINE).txt
	touch $@

bench: $(VENV)/.bench-installed
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)
