# Everything installs itself: a fresh machine needs only Python 3.11+, pip and make.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

UV = $(VENV)/bin/uv
# Installs compile every module to bytecode up front. Where PYTHONDONTWRITEBYTECODE is set (as on CI's
# machines), Python would otherwise compile Airflow's sources again in every process the suites start
# (each CLI call, emulator, cluster component and DAG parse): several seconds of CPU each.
export UV_COMPILE_BYTECODE := 1

# The Airflow release lines CI tests: the newest patch of each, and the day its dependencies are
# resolved as of (the day after that patch's release). `make constraints` writes the resolution to
# constraints/airflow-<line>.txt, which every install of that line is held to, so the same commit
# gives the same environment whenever it runs. To move a line to a new patch, change both here and
# run `make constraints`. The next line is tested from its first pre-release, at its newest one
# (resolved as of the day after it) until its final release is out.
AIRFLOW_LINES := 2.11 3.0 3.1 3.2 3.3 3.4
AIRFLOW_2.11 := 2.11.2
RESOLVED_2.11 := 2026-03-15
AIRFLOW_3.0 := 3.0.6
RESOLVED_3.0 := 2025-08-30
AIRFLOW_3.1 := 3.1.8
RESOLVED_3.1 := 2026-03-12
AIRFLOW_3.2 := 3.2.2
RESOLVED_3.2 := 2026-05-30
AIRFLOW_3.3 := 3.3.2
RESOLVED_3.3 := 2026-09-18
AIRFLOW_3.4 := 3.4.0b2
RESOLVED_3.4 := 2026-10-21

# The newest line lives in $(VENV) (demo, lint, type checks, benchmarks, the whole suite); every
# other line, and the newest on Python 3.13, in a venv of its own that runs the `every_line` tests,
# the slow ones among them (`edge_lines`: the docs' DAG and server examples) on the oldest line only.
NEWEST_LINE := 3.3
OLDEST_LINE := 2.11
OTHER_LINES := $(filter-out $(NEWEST_LINE),$(AIRFLOW_LINES))
# every_marker(line): the tests a line other than the newest runs.
every_marker = $(if $(filter $(1),$(OLDEST_LINE)),every_line,every_line and not edge_lines)
# pyenv's 3.13 when there is one (its shim answers only for the global version), else PATH's.
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13))

.PHONY: install demo test check lint typecheck test-newest test-newest-rest test-newest-rest-1 test-newest-rest-2 test-newest-processes test-durations test-lines test-py313 constraints clean browser-deps \
	$(addprefix test-airflow-,$(AIRFLOW_LINES))

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade uv

# install-into(venv, line): the project with its dev extra and that line's Airflow, held to its constraints.
define install-into
$(UV) pip install --quiet --python $(1)/bin/python -e ".[dev]" "apache-airflow==$(AIRFLOW_$(2))" \
	--constraint constraints/airflow-$(2).txt
touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml constraints/airflow-$(NEWEST_LINE).txt | $(UV)
	$(call install-into,$(VENV),$(NEWEST_LINE))

.venv-airflow-%/.installed: pyproject.toml constraints/airflow-%.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python $(VENV)/bin/python .venv-airflow-$*
	$(call install-into,.venv-airflow-$*,$*)

.venv-py3.13/.installed: pyproject.toml constraints/airflow-$(NEWEST_LINE).txt | $(UV)
	@test -n "$(PYTHON313)" || { echo "no Python 3.13 found: set PYTHON313=/path/to/python3.13"; exit 1; }
	$(UV) venv --quiet --allow-existing --python $(PYTHON313) .venv-py3.13
	$(call install-into,.venv-py3.13,$(NEWEST_LINE))

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/python scripts/demo.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# The development loop's fast tier, a few minutes on 2 cores: lint, types, and the newest line's tests
# that start no Airflow cluster, CLI, DAG run, nested pytest or extra emulator process and fuzz
# nothing at length (markers `scheduler`, `edge_lines`, `slow`). `make test` runs everything.
check: lint typecheck
	$(VENV)/bin/python -m pytest -q -m "not scheduler and not edge_lines and not slow" $(PYTEST_ARGS)

# The newest line: the whole suite, in two sessions that run at once under `make -j` (each with its
# own emulator): the tests that start Airflow's processes (the real scheduler and triggerer, and the
# browser test's `airflow standalone`), and everything else.
NEWEST_APART := tests/cluster tests/browser
test-newest: test-newest-rest test-newest-processes

# The rest in two shards at once, split by pytest-split on the durations in tests/.test_durations
# so that both take about as long and the run's longest session is halved. A test the file does not
# list counts as an average one; `make test-durations` measures them again.
NEWEST_REST := $(addprefix --ignore=,$(NEWEST_APART))
SPLIT := --splits 2 --splitting-algorithm least_duration --durations-path tests/.test_durations
test-newest-rest: test-newest-rest-1 test-newest-rest-2

test-newest-rest-1 test-newest-rest-2: test-newest-rest-%: install
	$(VENV)/bin/python -m pytest $(NEWEST_REST) $(SPLIT) --group $* $(PYTEST_ARGS)

test-durations: install
	$(VENV)/bin/python -m pytest $(NEWEST_REST) --store-durations --clean-durations \
		--durations-path tests/.test_durations $(PYTEST_ARGS)

test-newest-processes: install browser-deps
	$(VENV)/bin/python -m pytest $(NEWEST_APART) $(PYTEST_ARGS)

# The browser test drives Debian's Chromium (never a browser Playwright would download): installed
# here with apt-get where it is missing and this user may; otherwise the test is skipped, saying so.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed and cannot be installed here: the browser test will be skipped"

# Every other line: the tests marked `every_line` (see docs/compatibility.md).
$(addprefix test-airflow-,$(OTHER_LINES)): test-airflow-%: .venv-airflow-%/.installed
	.venv-airflow-$*/bin/python -m pytest -m "$(call every_marker,$*)" $(PYTEST_ARGS)

test-airflow-$(NEWEST_LINE): test-newest

# Python 3.13 runs the newest line's Airflow, whose CLI, DAG runs and cluster the newest line proves:
# the provider's own every-line tests run there, the `slow` and `scheduler` ones do not.
test-py313: .venv-py3.13/.installed
	.venv-py3.13/bin/python -m pytest -m "every_line and not edge_lines and not slow and not scheduler" $(PYTEST_ARGS)

test-lines: $(addprefix test-airflow-,$(OTHER_LINES)) test-py313

# The suites that start Airflow's own processes (the real scheduler and triggerer, the browser test's
# `airflow standalone`) run at normal CPU priority, and every other suite at the lowest (`nice -n 19`),
# so a scheduler loop never shares the 2 cores with busy suites as an equal: starved, it can leave a
# triggered run queued past any wait. Beside them from the start run the suites that start none of
# Airflow's processes and compute little: lint, type checks, the oldest line (2.11 has no Task
# Execution API for a cluster), Python 3.13 (its cluster is the newest line's), the wheel, and the
# installs of the later lines' venvs. Once they end, the others start (`after-*`), all at once: they
# wait on the emulator, on Airflow and on the windows and timeouts they test far more than they
# compute. Each suite's output is printed whole when it ends; any failure fails `make test`.
LATER_LINES := $(filter-out $(OLDEST_LINE),$(OTHER_LINES))
ASIDE := lint typecheck test-airflow-$(OLDEST_LINE) test-py313 test-wheel $(addprefix install-line-,$(LATER_LINES))
LATER_SUITES := test-newest-rest-1 test-newest-rest-2 $(addprefix test-airflow-,$(LATER_LINES))
TEST_JOBS ?= 16

# test-wheel (mk/dist.mk): the quickstart from the built wheel, installed in a venv of its own.
test: install
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-newest-processes \
		$(addprefix niced-,$(ASIDE)) $(addprefix after-,$(LATER_SUITES))

.PHONY: $(addprefix niced-,$(ASIDE)) $(addprefix after-,$(LATER_SUITES)) $(addprefix install-line-,$(OTHER_LINES))
$(addprefix niced-,$(ASIDE)): niced-%:
	nice -n 19 $(MAKE) --no-print-directory $*

$(addprefix after-,$(LATER_SUITES)): | test-newest-processes
$(addprefix after-test-airflow-,$(LATER_LINES)): after-test-airflow-%: | niced-install-line-%
$(addprefix after-,$(LATER_SUITES)): after-%:
	nice -n 19 $(MAKE) --no-print-directory $*

$(addprefix install-line-,$(OTHER_LINES)): install-line-%: .venv-airflow-%/.installed

# Resolve every line's dependencies as of its release day (see AIRFLOW_LINES above).
constraints: | $(UV)
	@for line in $(AIRFLOW_LINES); do $(MAKE) --no-print-directory constraints/airflow-$$line.txt -B; done

constraints/airflow-%.txt:
	echo "apache-airflow==$(AIRFLOW_$*)" | $(UV) pip compile --quiet pyproject.toml - --extra dev --extra bench --universal \
		--python-version 3.11 --exclude-newer $(RESOLVED_$*) --custom-compile-command "make constraints" -o $@

clean:
	rm -rf $(VENV) .venv-airflow-* .venv-py3.13 .venv-wheel dist .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Further targets (benchmarks, reliability runs) live beside this file, one topic a file.
-include mk/*.mk
