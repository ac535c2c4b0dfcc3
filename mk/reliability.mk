# Reliability: the fault matrix, the property tests and the API fuzzing at full size, with the whole
# suite under the secret-leak guard, then the figures (scenarios passed, inputs tried, secrets
# leaked, duplicates) printed above pytest's closing line. See tests/reliability/README.md.
#
#   make reliability                                     # the whole suite, heavy variants included
#   make reliability RELIABILITY_PATHS=tests/reliability # only the reliability tests
#
# Without make: DPC_RELIABILITY_HEAVY=1 .venv/bin/python -m pytest tests
RELIABILITY_PATHS ?= tests

.PHONY: reliability

reliability: install
	DPC_RELIABILITY_HEAVY=1 $(VENV)/bin/python -m pytest $(RELIABILITY_PATHS) $(PYTEST_ARGS)
